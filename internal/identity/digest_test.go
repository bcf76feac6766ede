package identity

import "testing"

// The encoding is unambiguous (length-prefixed), ordered, and pinned.
func TestDigest(t *testing.T) {
	distinct := [][]Field{
		nil,
		{},
		{{"", ""}},
		{{"a", "bc"}},
		{{"ab", "c"}},
		{{"a", "b"}, {"c", "d"}},
		{{"c", "d"}, {"a", "b"}},
		{{"a", "b\x00c"}},
		{{"a", "b"}, {"", "c"}},
		{{"a=b", ""}},
		{{"a", "=b"}},
	}
	seen := map[[32]byte]int{}
	for i, f := range distinct {
		d := Digest(f)
		if j, ok := seen[d]; ok && !(len(distinct[i]) == 0 && len(distinct[j]) == 0) {
			t.Errorf("cases %d and %d collide", i, j)
		}
		seen[d] = i
	}
	// Pinned: changing the encoding breaks every trigger/dispatcher pair
	// running different versions, so it must be a deliberate change.
	got := DigestHex(Digest([]Field{{"v", "1"}, {"run_id", "r-1"}}))
	const want = "82c6fdd5648cbbe5aab75545f4532836a81a02f8a09f76810a15b2cd926c0b89" // also computed independently with Python hashlib
	if got != want {
		t.Fatalf("digest %s", got)
	}
}
