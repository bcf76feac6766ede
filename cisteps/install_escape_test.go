package cisteps

import (
	"net"
	"runtime"
	"strings"
	"testing"
)

// Issue 24: the install step writes input values (build-from-source,
// release-base-url) into ::error and ::warning lines and its notes; a value
// with a line break must not start a workflow command of its own, and a %
// must not become an escape. The old step echoed them as they were.
func TestActionInstallEscapesInputs(t *testing.T) {
	if runtime.GOOS != "linux" && runtime.GOOS != "darwin" {
		t.Skip("the action installs release binaries on Linux and macOS runners only")
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	dead := "http://" + l.Addr().String()
	l.Close()
	const injected = "\n::notice title=injected::from an input"
	for _, tc := range []struct {
		name string
		with map[string]string
		want []string
	}{
		{"build-from-source", map[string]string{"build-from-source": "yes 100%0A" + injected},
			[]string{"::error title=deploy-broker action::build-from-source must be true, false or auto (or empty), not 'yes 100%250A%0A::notice title=injected::from an input'"}},
		{"release-base-url refused", map[string]string{"release-base-url": "ftp://mirror" + injected},
			[]string{"::error title=deploy-broker action::release-base-url must be an https:// URL (http:// only for a loopback address): ftp://mirror%0A::notice title=injected::from an input/v9.9.9"}},
		{"release-base-url, download fails, fallback", map[string]string{"release-base-url": dead + "/x\r" + injected, "build-from-source": "auto"},
			[]string{"::warning title=deploy-broker action::could not download " + dead + "/x%0D%0A::notice title=injected::from an input/v9.9.9/",
				"deploy-broker action: building deploy-trigger from source: could not download the release from " + dead + "/x%0D%0A::notice"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tc.with["job"] = "x"
			r := runActionStep(t, "install", tc.with, actionContext("v9.9.9"), nil, runnerEnv(t.TempDir(), t.TempDir()))
			for _, line := range strings.Split(r.stdout, "\n") {
				if strings.HasPrefix(line, "::notice") {
					t.Errorf("an input started a workflow command: %q", line)
				}
			}
			for _, w := range tc.want {
				if !strings.Contains(r.stdout, w) {
					t.Errorf("stdout lacks %q:\n%s", w, r.stdout)
				}
			}
		})
	}
}
