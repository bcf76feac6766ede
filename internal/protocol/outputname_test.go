package protocol

import "testing"

func TestOutputNameKey(t *testing.T) {
	for _, c := range []struct {
		a, b string
		same bool
	}{
		{"exit-code", "Exit-Code", true},
		{"OUTCOME", "outcome", true},
		{"requested-by", "Requested_By", false},
		{"image", "images", false},
	} {
		if got := OutputNameKey(c.a) == OutputNameKey(c.b); got != c.same {
			t.Errorf("%q vs %q: same = %v, want %v", c.a, c.b, got, c.same)
		}
	}
}
