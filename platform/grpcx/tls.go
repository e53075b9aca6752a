package grpcx

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"os"
	"sync"
	"time"
)

// TLSFiles names the PEM files of a process's gRPC TLS: its certificate and
// key (served to clients, and presented to servers as its client
// certificate) and the CA that signs the certificates of its peers.
type TLSFiles struct {
	// CertFile and KeyFile are this process's certificate chain and key.
	CertFile, KeyFile string
	// CAFile holds the CA certificates that peers' certificates must chain
	// to: clients' certificates on the server side, servers' on the client
	// side. Empty on the client side trusts the system's roots.
	CAFile string
}

// reloadEvery is how often certificate files are checked for a new version
// (cert-manager renews them in place).
const reloadEvery = 30 * time.Second

// ServerTLS is the TLS configuration of a gRPC listener: the certificate
// (reloaded when its files change) and, with a CA file, client certificates
// verified when given — the homeserver authenticates with a bearer secret
// instead, so none is required.
func ServerTLS(f TLSFiles) (*tls.Config, error) {
	kp, err := newKeyPair(f.CertFile, f.KeyFile)
	if err != nil {
		return nil, err
	}
	cfg := &tls.Config{
		MinVersion:     tls.VersionTLS12,
		GetCertificate: func(*tls.ClientHelloInfo) (*tls.Certificate, error) { return kp.get() },
	}
	if f.CAFile != "" {
		pool, err := loadPool(f.CAFile)
		if err != nil {
			return nil, err
		}
		cfg.ClientCAs = pool
		cfg.ClientAuth = tls.VerifyClientCertIfGiven
	}
	return cfg, nil
}

// ClientTLS is the TLS configuration of calls to other services: servers are
// verified against the CA file (or the system's roots), and this process's
// certificate, when configured, is presented as its client certificate.
func ClientTLS(f TLSFiles) (*tls.Config, error) {
	cfg := &tls.Config{MinVersion: tls.VersionTLS12}
	if f.CAFile != "" {
		pool, err := loadPool(f.CAFile)
		if err != nil {
			return nil, err
		}
		cfg.RootCAs = pool
	}
	if f.CertFile != "" {
		kp, err := newKeyPair(f.CertFile, f.KeyFile)
		if err != nil {
			return nil, err
		}
		cfg.GetClientCertificate = func(*tls.CertificateRequestInfo) (*tls.Certificate, error) { return kp.get() }
	}
	return cfg, nil
}

func loadPool(file string) (*x509.CertPool, error) {
	pem, err := os.ReadFile(file)
	if err != nil {
		return nil, fmt.Errorf("grpcx: CA file: %w", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		return nil, fmt.Errorf("grpcx: CA file %s holds no PEM certificate", file)
	}
	return pool, nil
}

// keyPair is a certificate and key read from files, read again when the
// certificate file changes.
type keyPair struct {
	certFile, keyFile string

	mu      sync.Mutex
	cert    *tls.Certificate
	modTime time.Time
	checked time.Time
}

func newKeyPair(certFile, keyFile string) (*keyPair, error) {
	kp := &keyPair{certFile: certFile, keyFile: keyFile}
	if _, err := kp.get(); err != nil {
		return nil, err
	}
	return kp, nil
}

// get returns the current certificate, reloading it when the file changed;
// a failed reload keeps the previous certificate.
func (kp *keyPair) get() (*tls.Certificate, error) {
	kp.mu.Lock()
	defer kp.mu.Unlock()
	now := time.Now()
	if kp.cert != nil && now.Sub(kp.checked) < reloadEvery {
		return kp.cert, nil
	}
	kp.checked = now
	info, err := os.Stat(kp.certFile)
	if err == nil && kp.cert != nil && info.ModTime().Equal(kp.modTime) {
		return kp.cert, nil
	}
	cert, loadErr := tls.LoadX509KeyPair(kp.certFile, kp.keyFile)
	if loadErr != nil {
		if kp.cert != nil {
			return kp.cert, nil
		}
		return nil, fmt.Errorf("grpcx: certificate: %w", loadErr)
	}
	kp.cert = &cert
	if err == nil {
		kp.modTime = info.ModTime()
	}
	return kp.cert, nil
}
