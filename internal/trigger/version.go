package trigger

import "runtime/debug"

// Version is set at build time with
// -ldflags "-X github.com/deploy-broker/deploy-broker/internal/trigger.Version=v1.2.3".
var Version = ""

func version() string {
	if Version != "" {
		return Version
	}
	if bi, ok := debug.ReadBuildInfo(); ok && bi.Main.Version != "" && bi.Main.Version != "(devel)" {
		return bi.Main.Version
	}
	return "dev"
}
