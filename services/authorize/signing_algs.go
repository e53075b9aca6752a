package authorize

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"os"
)

// defaultSigningAlgorithms are those of the keys the token service generates on first start.
var defaultSigningAlgorithms = []string{"RS256", "ES256"}

// signingAlgorithms reads the ID-token algorithms discovery announces from the
// configured key files (RSA: RS256, P-256: ES256, P-384: ES384), the keys the
// token service signs with when they are set.
func signingAlgorithms(files []string) ([]string, error) {
	if len(files) == 0 {
		return defaultSigningAlgorithms, nil
	}
	seen := map[string]bool{}
	var algs []string
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			return nil, fmt.Errorf("authorize: signing key: %w", err)
		}
		for block, rest := pem.Decode(data); block != nil; block, rest = pem.Decode(rest) {
			alg := algorithmOfPEM(block)
			if alg != "" && !seen[alg] {
				seen[alg] = true
				algs = append(algs, alg)
			}
		}
	}
	if len(algs) == 0 {
		return nil, fmt.Errorf("authorize: no usable signing key in %v", files)
	}
	return algs, nil
}

func algorithmOfPEM(block *pem.Block) string {
	var key any
	var err error
	switch block.Type {
	case "RSA PRIVATE KEY":
		key, err = x509.ParsePKCS1PrivateKey(block.Bytes)
	case "EC PRIVATE KEY":
		key, err = x509.ParseECPrivateKey(block.Bytes)
	case "PRIVATE KEY":
		key, err = x509.ParsePKCS8PrivateKey(block.Bytes)
	default:
		return ""
	}
	if err != nil {
		return ""
	}
	switch k := key.(type) {
	case *rsa.PrivateKey:
		return "RS256"
	case *ecdsa.PrivateKey:
		switch k.Curve {
		case elliptic.P256():
			return "ES256"
		case elliptic.P384():
			return "ES384"
		}
	}
	return ""
}
