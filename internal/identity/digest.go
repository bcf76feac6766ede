package identity

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
)

// Field is one named value that goes into a request digest.
type Field struct {
	Name  string
	Value string
}

// digestDomain separates these digests from any other SHA-256 in the system.
const digestDomain = "deploy-broker/identity/request-digest/v1"

// Digest returns SHA-256 over an unambiguous encoding of fields, in the order
// given: the domain string, the number of fields, then for each field its
// name and its value, every string preceded by its length as a big-endian
// uint64. No choice of names or values (separators, empty strings, NUL) can
// make two different field lists encode alike.
//
// Which fields go in, and in which order, is the caller's contract: the
// trigger and the dispatcher must build the same list from the same message
// (e.g. protocol version, kind, run id, job, every parameter sorted by name,
// requested_at, expires_at, audience). Order matters; a map must be sorted
// by the caller. A field left out is not protected by the proof.
func Digest(fields []Field) [32]byte {
	h := sha256.New()
	var n [8]byte
	put := func(s string) {
		binary.BigEndian.PutUint64(n[:], uint64(len(s)))
		h.Write(n[:])
		h.Write([]byte(s))
	}
	put(digestDomain)
	binary.BigEndian.PutUint64(n[:], uint64(len(fields)))
	h.Write(n[:])
	for _, f := range fields {
		put(f.Name)
		put(f.Value)
	}
	var out [32]byte
	copy(out[:], h.Sum(nil))
	return out
}

// DigestHex is the lowercase hex form used in the bound header.
func DigestHex(d [32]byte) string { return hex.EncodeToString(d[:]) }
