package cisteps

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"

	"github.com/deploy-broker/deploy-broker/internal/protocol"
)

// goreleaser finds the pinned GoReleaser (scripts/install-goreleaser.sh puts
// it in GOPATH/bin; .ci/run runs that script) or skips, saying how to get it.
func goreleaser(t *testing.T) string {
	t.Helper()
	out, err := exec.Command(filepath.Join(repoRoot, "scripts/install-goreleaser.sh"), "--print-path").Output()
	if err != nil {
		t.Fatalf("scripts/install-goreleaser.sh --print-path: %v", err)
	}
	path := strings.TrimSpace(string(out))
	if _, err := os.Stat(path); err != nil {
		if p, err := exec.LookPath("goreleaser"); err == nil {
			path = p
		} else {
			if os.Getenv("DEPLOY_BROKER_REQUIRE_GORELEASER") != "" {
				t.Fatal("goreleaser is not installed and DEPLOY_BROKER_REQUIRE_GORELEASER is set (.ci/run): run scripts/install-goreleaser.sh")
			}
			t.Skip("goreleaser is not installed, so .goreleaser.yaml was not checked: run scripts/install-goreleaser.sh (builds GoReleaser v2.15.1 from source, a few minutes) or make goreleaser")
		}
	}
	v, err := exec.Command(path, "--version").CombinedOutput()
	if err != nil || !strings.Contains(string(v), "GitVersion:    v2.") {
		t.Fatalf("%s is not GoReleaser v2 (%v):\n%s", path, err, v)
	}
	return path
}

// TestGoReleaserConfig runs goreleaser check on .goreleaser.yaml, then a
// snapshot build of deploy-trigger for this machine only (one target, not
// the release's thirteen) in a temporary dist directory, and runs the
// binary: it must report the snapshot's version, the commit and the
// platform.
func TestGoReleaserConfig(t *testing.T) {
	gr := goreleaser(t)
	root, err := filepath.Abs(repoRoot)
	if err != nil {
		t.Fatal(err)
	}
	check := exec.Command(gr, "check")
	check.Dir = root
	if out, err := check.CombinedOutput(); err != nil {
		t.Fatalf("goreleaser check: %v\n%s", err, out)
	} else if strings.Contains(string(out), "DEPRECATED") {
		t.Errorf("goreleaser check warns about deprecated settings:\n%s", out)
	}
	if testing.Short() {
		t.Skip("goreleaser check passed; the snapshot build is skipped with -short")
	}

	// The same configuration with dist/ in a temporary directory, so the
	// test leaves the checkout alone.
	var cfg map[string]any
	if err := yaml.Unmarshal([]byte(readFile(t, filepath.Join(root, ".goreleaser.yaml"))), &cfg); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	cfg["dist"] = filepath.Join(dir, "dist")
	b, err := yaml.Marshal(cfg)
	if err != nil {
		t.Fatal(err)
	}
	cfgFile := filepath.Join(dir, "goreleaser.yaml")
	writeFile(t, cfgFile, string(b))
	bin := filepath.Join(dir, "deploy-trigger")
	build := exec.Command(gr, "build", "--config", cfgFile, "--snapshot", "--single-target", "--id", "deploy-trigger", "--output", bin)
	build.Dir = root
	build.Env = append(os.Environ(), "GOOS="+runtime.GOOS, "GOARCH="+runtime.GOARCH)
	if remotes, _ := exec.Command("git", "-C", root, "remote").Output(); len(remotes) == 0 {
		// Without a remote GoReleaser drops the commit and date (Makefile,
		// release-snapshot): give it one through the environment only.
		build.Env = append(build.Env, "GIT_CONFIG_COUNT=1", "GIT_CONFIG_KEY_0=remote.origin.url",
			"GIT_CONFIG_VALUE_0=https://github.com/deploy-broker/deploy-broker.git")
	}
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("goreleaser build --snapshot --single-target --id deploy-trigger: %v\n%s", err, out)
	}
	commit, err := exec.Command("git", "-C", root, "rev-parse", "HEAD").Output()
	if err != nil {
		t.Fatal(err)
	}
	v := versionOf(t, bin)
	want := "deploy-trigger v0.0.0-SNAPSHOT-"
	if tags, _ := exec.Command("git", "-C", root, "tag", "--list", "v*").Output(); len(tags) > 0 {
		want = "deploy-trigger v" // the latest tag's version, then -SNAPSHOT-<commit>
	}
	for _, w := range []string{want, "-SNAPSHOT-", "(commit " + string(commit[:12]) + ", built 20", ", " + runtime.GOOS + "/" + runtime.GOARCH + ")"} {
		if !strings.Contains(v, w) {
			t.Errorf("the snapshot binary's --version is %q; it lacks %q", v, w)
		}
	}
}

// TestReleaseVersionFile: the action's @v1 reads release-version, and the
// release's before-hook refuses a tag that it does not name.
func TestReleaseVersionFile(t *testing.T) {
	v := strings.TrimSpace(readFile(t, filepath.Join(repoRoot, "release-version")))
	if !regexp.MustCompile(`^v\d+\.\d+\.\d+$`).MatchString(v) {
		t.Errorf("release-version is %q, not vX.Y.Z", v)
	}
	if !strings.Contains(readFile(t, filepath.Join(repoRoot, ".goreleaser.yaml")), `test "$(cat release-version)" = "{{ .Tag }}"`) {
		t.Error(".goreleaser.yaml no longer checks release-version against the tag")
	}
}

// TestReleaseDispatcherZip (issue 24): the release's dispatcher zip is
// `bootstrap` alone, built as the stack builds it (linux/arm64,
// lambda.norpc), and what it lacks is said where a user looks: it has no
// broker.yaml (the catalogue is the user's), the stack builds its own
// package, and docs/INFRA.md shows how to complete the zip for a deployment
// of one's own, with the variable the function reads the catalogue's path
// from. Before, nothing said so, and the zip failed its start-up silently.
func TestReleaseDispatcherZip(t *testing.T) {
	var cfg struct {
		Builds []struct {
			ID     string   `yaml:"id"`
			Main   string   `yaml:"main"`
			Binary string   `yaml:"binary"`
			Goos   []string `yaml:"goos"`
			Goarch []string `yaml:"goarch"`
			Flags  []string `yaml:"flags"`
		} `yaml:"builds"`
		Archives []struct {
			ID           string   `yaml:"id"`
			IDs          []string `yaml:"ids"`
			Formats      []string `yaml:"formats"`
			NameTemplate string   `yaml:"name_template"`
			Files        []string `yaml:"files"`
		} `yaml:"archives"`
	}
	text := readFile(t, filepath.Join(repoRoot, ".goreleaser.yaml"))
	if err := yaml.Unmarshal([]byte(text), &cfg); err != nil {
		t.Fatal(err)
	}
	built := false
	for _, b := range cfg.Builds {
		if b.ID == "dispatcher" {
			built = b.Main == "./cmd/dispatcher-lambda" && b.Binary == "bootstrap" && strings.Join(b.Goos, ",") == "linux" &&
				strings.Join(b.Goarch, ",") == "arm64" && slices.Contains(b.Flags, "-tags=lambda.norpc")
		}
	}
	if !built {
		t.Error(".goreleaser.yaml: no dispatcher build of ./cmd/dispatcher-lambda as bootstrap for linux/arm64 with -tags=lambda.norpc")
	}
	zipped := false
	for _, a := range cfg.Archives {
		if a.ID == "dispatcher" {
			zipped = slices.Equal(a.IDs, []string{"dispatcher"}) && slices.Equal(a.Formats, []string{"zip"}) &&
				slices.Equal(a.Files, []string{"none*"}) && a.NameTemplate == "deploy-broker-dispatcher_{{ .Version }}_{{ .Os }}_{{ .Arch }}"
		}
	}
	if !zipped {
		t.Error(".goreleaser.yaml: the dispatcher archive is no longer deploy-broker-dispatcher_<version>_linux_arm64.zip with bootstrap alone; update this test and docs/INFRA.md")
	}
	for _, want := range []string{"no broker.yaml", "docs/INFRA.md \"The release's dispatcher zip\""} {
		if !strings.Contains(text, want) {
			t.Errorf(".goreleaser.yaml's list of artifacts does not say %q", want)
		}
	}
	infra := readFile(t, filepath.Join(repoRoot, "docs/INFRA.md"))
	_, section, ok := strings.Cut(infra, "\n### The release's dispatcher zip\n")
	if !ok {
		t.Fatal(`docs/INFRA.md has no section "The release's dispatcher zip"`)
	}
	section, _, _ = strings.Cut(section, "\n## ")
	for _, want := range []string{"does not use", "zip deploy-broker-dispatcher_1.2.3_linux_arm64.zip broker.yaml",
		protocol.EnvConfig + "=/var/task/broker.yaml", "provided.al2023", "arm64", "handler bootstrap"} {
		if !strings.Contains(section, want) {
			t.Errorf("docs/INFRA.md \"The release's dispatcher zip\" does not say %q", want)
		}
	}
	if !strings.Contains(readFile(t, filepath.Join(repoRoot, "README.md")), "(docs/INFRA.md#the-releases-dispatcher-zip)") {
		t.Error("README.md's Install section does not link docs/INFRA.md#the-releases-dispatcher-zip")
	}
}
