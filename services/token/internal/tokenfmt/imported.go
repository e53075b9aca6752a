package tokenfmt

import (
	"encoding/base64"
	"strings"
)

// Tokens imported from Synapse (gatehouse migrate synapse) keep working:
// clients hold them, and only their hashes were imported. They carry no MAC
// of ours, so they are recognised by their shape alone and looked up by
// hash: syt_… access tokens, syr_… refresh tokens, and the macaroons Synapse
// issued as access tokens before 1.34. As MAS does, their CRC is not
// checked (macaroons have none): a token no import brought in is simply
// unknown.

// maxImportedLen bounds an imported token (macaroons run to a few hundred
// characters).
const maxImportedLen = 1024

// Imported returns the kind of a token in one of Synapse's formats:
// CompatAccessToken for syt_… and macaroons, CompatRefreshToken for syr_…;
// 0 for anything else.
func Imported(token string) Kind {
	if len(token) > maxImportedLen || len(token) < 8 {
		return 0
	}
	switch {
	case strings.HasPrefix(token, "syt_") && synapseShaped(token[4:]):
		return CompatAccessToken
	case strings.HasPrefix(token, "syr_") && synapseShaped(token[4:]):
		return CompatRefreshToken
	case isMacaroon(token):
		return CompatAccessToken
	}
	return 0
}

// synapseShaped reports whether the rest of a syt_/syr_ token holds only the
// characters Synapse writes there (standard base64 of the localpart,
// letters, digits and underscores).
func synapseShaped(rest string) bool {
	for i := range len(rest) {
		c := rest[i]
		if !('0' <= c && c <= '9' || 'A' <= c && c <= 'Z' || 'a' <= c && c <= 'z' || c == '_' || c == '+' || c == '/') {
			return false
		}
	}
	return true
}

// isMacaroon reports whether token is a pymacaroons v1 binary macaroon in
// URL-safe base64: its first packet reads "location ".
func isMacaroon(token string) bool {
	token = strings.TrimRight(token, "=")
	// Its first 20 characters decode to its first 15 bytes: most tokens
	// (every one of ours) are told apart by them without decoding the rest.
	if len(token) >= 20 {
		var head [15]byte
		if _, err := base64.RawURLEncoding.Decode(head[:], []byte(token[:20])); err != nil || string(head[4:13]) != "location " {
			return false
		}
	}
	raw, err := base64.RawURLEncoding.DecodeString(token)
	return err == nil && len(raw) > 13 && string(raw[4:13]) == "location "
}
