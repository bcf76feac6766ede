package trigger

import (
	"flag"
	"os"
	"testing"
)

var update = flag.Bool("update", false, "rewrite testdata/*.golden from the current output")

func TestMain(m *testing.M) {
	// moto's SDK config brings its own *http.Client, which the SDK cannot
	// combine with a custom CA bundle from the environment; moto is plain
	// HTTP on loopback, so no CA bundle is needed in these tests.
	os.Unsetenv("AWS_CA_BUNDLE")
	os.Exit(m.Run())
}
