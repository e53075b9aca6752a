package verification

import (
	"crypto/hmac"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/binary"
	"encoding/hex"
	"fmt"
)

// KeySize is the size of the service key in bytes.
const KeySize = 32

// Key derives the secrets of verifications: codes and recovery tickets.
//
// A secret is HMAC-SHA-256(key, label, verification id, issue number, block),
// read as a stream of uniformly random bytes and mapped to digits or
// alphanumerics by rejection sampling, so every code and every ticket
// character is equally likely. Deriving rather than storing the secret lets
// the delivery consumer write it into the email after a restart or on another
// replica, and checking a code by deriving it again, while the event log
// holds nothing of a code and only the hash of a ticket. The key is generated
// from crypto/rand on the service's first start and kept in the NOTIFY
// stream, sealed with the deployment's key-encryption key (platform/sealed).
type Key []byte

// Code returns the 6-digit code of one issue of a verification.
func (k Key) Code(id string, issue uint32) string {
	// 4294000000 is the largest multiple of 10^6 below 2^32: words at or above
	// it are rejected so that every code is equally likely.
	const limit = 4294000000
	var out [CodeLength]byte
	s := k.stream("code", id, issue)
	for {
		w := binary.BigEndian.Uint32(s.next(4))
		if w >= limit {
			continue
		}
		n := w % 1000000
		for i := CodeLength - 1; i >= 0; i-- {
			out[i] = byte('0' + n%10)
			n /= 10
		}
		return string(out[:])
	}
}

// ticketAlphabet is the alphabet of recovery tickets: 62 characters.
const ticketAlphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"

// Ticket returns the 32-character recovery ticket of one issue of a verification.
func (k Key) Ticket(id string, issue uint32) string {
	// 248 is the largest multiple of 62 that fits in a byte.
	const limit = 256 - 256%len(ticketAlphabet)
	out := make([]byte, 0, TicketLength)
	s := k.stream("ticket", id, issue)
	for len(out) < TicketLength {
		b := s.next(1)[0]
		if int(b) < limit {
			out = append(out, ticketAlphabet[int(b)%len(ticketAlphabet)])
		}
	}
	return string(out)
}

// stream is an endless sequence of pseudo-random bytes: the concatenated
// HMAC-SHA-256 blocks of (label, id, issue, block number).
type stream struct {
	mac   []byte
	input []byte
	block uint32
	buf   []byte
}

func (k Key) stream(label, id string, issue uint32) *stream {
	input := fmt.Appendf(nil, "gatehouse.notify.%s\x00%s\x00", label, id)
	input = binary.BigEndian.AppendUint32(input, issue)
	return &stream{mac: k, input: input}
}

// next returns the next n bytes (n <= sha256.Size).
func (s *stream) next(n int) []byte {
	if len(s.buf) < n {
		h := hmac.New(sha256.New, s.mac)
		h.Write(s.input)
		h.Write(binary.BigEndian.AppendUint32(nil, s.block))
		s.block++
		s.buf = append(s.buf, h.Sum(nil)...)
	}
	out := s.buf[:n]
	s.buf = s.buf[n:]
	return out
}

// CodeHash is what events written before sealing stored of a code: SHA-256
// (hex) of "<id>:<code>". It is only as hard to invert as 10^6 guesses, so it
// is no longer written (see State.rightCode); codes those events issued are
// still checked against it.
func CodeHash(id, code string) string {
	sum := sha256.Sum256([]byte(id + ":" + code))
	return hex.EncodeToString(sum[:])
}

// TicketHash is what events store of a recovery ticket: SHA-256 (hex). The
// projection indexes it to find a ticket's verification.
func TicketHash(ticket string) string {
	sum := sha256.Sum256([]byte(ticket))
	return hex.EncodeToString(sum[:])
}

// equalHash compares two hashes in constant time.
func equalHash(a, b string) bool {
	return a != "" && subtle.ConstantTimeCompare([]byte(a), []byte(b)) == 1
}
