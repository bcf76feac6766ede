package trigger

import (
	"fmt"
	"runtime"
	"runtime/debug"
)

// Version, Commit and Date are set at build time (Makefile, .goreleaser.yaml):
//
//	-ldflags "-X github.com/deploy-broker/deploy-broker/internal/trigger.Version=v1.2.3
//	          -X github.com/deploy-broker/deploy-broker/internal/trigger.Commit=<sha>
//	          -X github.com/deploy-broker/deploy-broker/internal/trigger.Date=<RFC 3339>"
//
// Left empty, they come from the module and VCS information Go embeds
// (go install …@v1.2.3 gives the module version), else "dev"/"unknown".
var (
	Version = ""
	Commit  = ""
	Date    = ""
)

func version() string {
	if Version != "" {
		return Version
	}
	if bi, ok := debug.ReadBuildInfo(); ok && bi.Main.Version != "" && bi.Main.Version != "(devel)" {
		return bi.Main.Version
	}
	return "dev"
}

// versionLine is what --version prints: version, commit, build date and
// platform, e.g. "deploy-trigger v1.2.3 (commit 1a2b3c4, built
// 2026-11-30T17:00:00Z, linux/amd64)".
func versionLine() string {
	commit, date := Commit, Date
	if bi, ok := debug.ReadBuildInfo(); ok {
		for _, s := range bi.Settings {
			switch {
			case s.Key == "vcs.revision" && commit == "":
				commit = s.Value
			case s.Key == "vcs.time" && date == "":
				date = s.Value
			}
		}
	}
	if len(commit) > 12 {
		commit = commit[:12]
	}
	if commit == "" {
		commit = "unknown"
	}
	if date == "" {
		date = "unknown"
	}
	return fmt.Sprintf("deploy-trigger %s (commit %s, built %s, %s/%s)", version(), commit, date, runtime.GOOS, runtime.GOARCH)
}
