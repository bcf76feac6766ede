package cisteps

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strings"
	"sync"
	"testing"

	"gopkg.in/yaml.v3"
)

// The tests in this file run the action's install steps (action.yml:
// install, then build when it asks for one) with bash as the runner would,
// against a local release directory served over HTTP on 127.0.0.1, laid out
// as the GitHub release is: <base>/<tag>/<archive>, with the archive and
// checksums file names that .goreleaser.yaml produces.

// releaseNames renders .goreleaser.yaml's name templates of deploy-trigger's
// archive and of the checksums file for a version (without the v), so that
// the test's release is named as the real one.
func releaseNames(t testing.TB, version, goos, goarch string) (archive, sums string) {
	t.Helper()
	var cfg struct {
		ProjectName string `yaml:"project_name"`
		Archives    []struct {
			ID           string   `yaml:"id"`
			IDs          []string `yaml:"ids"`
			Formats      []string `yaml:"formats"`
			NameTemplate string   `yaml:"name_template"`
		} `yaml:"archives"`
		Checksum struct {
			NameTemplate string `yaml:"name_template"`
			Algorithm    string `yaml:"algorithm"`
		} `yaml:"checksum"`
	}
	if err := yaml.Unmarshal([]byte(readFile(t, filepath.Join(repoRoot, ".goreleaser.yaml"))), &cfg); err != nil {
		t.Fatal(err)
	}
	render := func(tmpl string) string {
		out := regexp.MustCompile(`\{\{\s*\.(\w+)\s*\}\}`).ReplaceAllStringFunc(tmpl, func(m string) string {
			switch regexp.MustCompile(`\w+`).FindString(m) {
			case "ProjectName":
				return cfg.ProjectName
			case "Version":
				return version
			case "Os":
				return goos
			case "Arch":
				return goarch
			}
			t.Fatalf(".goreleaser.yaml: name template %q uses %s, which the action does not know; change both", tmpl, m)
			return ""
		})
		if strings.Contains(out, "{{") {
			t.Fatalf(".goreleaser.yaml: name template %q is not plain fields", tmpl)
		}
		return out
	}
	if cfg.Checksum.Algorithm != "sha256" {
		t.Fatalf(".goreleaser.yaml: checksum algorithm %q; the action checks SHA-256", cfg.Checksum.Algorithm)
	}
	for _, a := range cfg.Archives {
		if a.ID == "deploy-trigger" {
			if len(a.Formats) != 1 || a.Formats[0] != "tar.gz" {
				t.Fatalf(".goreleaser.yaml: deploy-trigger's archive formats are %v; the action extracts tar.gz", a.Formats)
			}
			return render(a.NameTemplate) + ".tar.gz", render(cfg.Checksum.NameTemplate)
		}
	}
	t.Fatal(".goreleaser.yaml has no archive with id deploy-trigger")
	return "", ""
}

// testRelease is a local release host: a directory served on 127.0.0.1.
type testRelease struct {
	dir, url, tag string
	mu            sync.Mutex
	requests      []string
}

func (r *testRelease) served() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]string(nil), r.requests...)
}

var (
	releaseBinOnce sync.Once
	releaseBin     string
	releaseBinErr  error
)

// newTestRelease builds deploy-trigger for this machine stamped as tag (as
// .goreleaser.yaml stamps it), packs it as GoReleaser does and serves
// <url>/<tag>/<archive> and the checksums file.
func newTestRelease(t testing.TB, tag string) *testRelease {
	t.Helper()
	releaseBinOnce.Do(func() {
		releaseBin = filepath.Join(binDir, "release", "deploy-trigger")
		pkg := "github.com/deploy-broker/deploy-broker/internal/trigger"
		out, err := exec.Command("go", "build", "-trimpath", "-ldflags",
			"-s -w -X "+pkg+".Version="+tag+" -X "+pkg+".Commit=0123456789abcdef -X "+pkg+".Date=2026-11-30T17:00:00Z",
			"-o", releaseBin, filepath.Join(repoRoot, "cmd/trigger")).CombinedOutput()
		if err != nil {
			releaseBinErr = fmt.Errorf("building deploy-trigger: %v\n%s", err, out)
		}
	})
	if releaseBinErr != nil {
		t.Fatal(releaseBinErr)
	}
	if tag != "v9.9.9" {
		t.Fatalf("the test release binary is stamped v9.9.9, not %s", tag)
	}
	archive, sums := releaseNames(t, strings.TrimPrefix(tag, "v"), runtime.GOOS, runtime.GOARCH)
	r := &testRelease{dir: t.TempDir(), tag: tag}
	if err := os.MkdirAll(filepath.Join(r.dir, tag), 0o755); err != nil {
		t.Fatal(err)
	}
	bin, err := os.ReadFile(releaseBin)
	if err != nil {
		t.Fatal(err)
	}
	tgz := triggerArchive(bin)
	sum := sha256.Sum256(tgz)
	writeFile(t, filepath.Join(r.dir, tag, archive), string(tgz))
	writeFile(t, filepath.Join(r.dir, tag, sums),
		strings.Repeat("0", 64)+"  deploy-runner_"+strings.TrimPrefix(tag, "v")+"_linux_amd64.tar.gz\n"+
			hex.EncodeToString(sum[:])+"  "+archive+"\n")
	r.serve(t)
	return r
}

// triggerArchive is a release archive (.tar.gz) holding bin as the
// executable deploy-trigger.
func triggerArchive(bin []byte) []byte {
	var tgz bytes.Buffer
	gz := gzip.NewWriter(&tgz)
	tw := tar.NewWriter(gz)
	tw.WriteHeader(&tar.Header{Name: "deploy-trigger", Mode: 0o755, Size: int64(len(bin)), Typeflag: tar.TypeReg})
	tw.Write(bin)
	tw.Close()
	gz.Close()
	return tgz.Bytes()
}

// serve serves r.dir on 127.0.0.1, recording each request's path.
func (r *testRelease) serve(t testing.TB) {
	files := http.FileServer(http.Dir(r.dir))
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		r.mu.Lock()
		r.requests = append(r.requests, req.URL.Path)
		r.mu.Unlock()
		files.ServeHTTP(w, req)
	}))
	t.Cleanup(srv.Close)
	r.url = srv.URL
}

// snapshotRelease serves the release that `make release-snapshot` left in
// dist/, as <url>/v<version>/<file>, or returns nil when there is none.
func snapshotRelease(t testing.TB) *testRelease {
	t.Helper()
	dist, err := filepath.Abs(filepath.Join(repoRoot, "dist"))
	if err != nil {
		t.Fatal(err)
	}
	sums, _ := filepath.Glob(filepath.Join(dist, "deploy-broker_*_checksums.txt"))
	if len(sums) != 1 {
		return nil
	}
	version := strings.TrimSuffix(strings.TrimPrefix(filepath.Base(sums[0]), "deploy-broker_"), "_checksums.txt")
	r := &testRelease{dir: t.TempDir(), tag: "v" + version}
	if err := os.Symlink(dist, filepath.Join(r.dir, r.tag)); err != nil {
		t.Fatal(err)
	}
	r.serve(t)
	return r
}

func writeFile(t testing.TB, path, content string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

// stepRun is one run of one of the action's steps.
type stepRun struct {
	code           int
	stdout, stderr string
	outputs        map[string]string
}

// runActionStep runs step id of action.yml with bash as the runner runs a
// composite step: its env: evaluated for inputs (defaults from action.yml),
// the github context and earlier steps' outputs, plus env.
func runActionStep(t testing.TB, id string, with map[string]string, github map[string]string, steps map[string]map[string]string, env []string) stepRun {
	t.Helper()
	step, inputs := actionStepInputs(t, id, with)
	eval := func(expr string) string {
		expr = strings.TrimSpace(expr)
		if m := regexp.MustCompile(`^inputs\.([A-Za-z0-9_-]+)$`).FindStringSubmatch(expr); m != nil {
			return inputs[m[1]]
		}
		if m := regexp.MustCompile(`^github\.([a-z_]+)$`).FindStringSubmatch(expr); m != nil {
			return github[m[1]]
		}
		if m := regexp.MustCompile(`^steps\.([A-Za-z0-9_-]+)\.outputs\.([A-Za-z0-9_-]+)$`).FindStringSubmatch(expr); m != nil {
			return steps[m[1]][m[2]]
		}
		t.Fatalf("step %s uses ${{ %s }}, which this test cannot evaluate; extend it", id, expr)
		return ""
	}
	dir := t.TempDir()
	script := filepath.Join(dir, "step.sh")
	writeFile(t, script, step.Run)
	outputs := filepath.Join(dir, "github_output")
	full := append(baseEnv(), "GITHUB_ACTIONS=true", "GITHUB_OUTPUT="+outputs)
	full = append(full, env...)
	full = append(full, step.evalEnv(eval)...)
	cmd := exec.Command("bash", "--noprofile", "--norc", "-eo", "pipefail", script)
	cmd.Env = full
	cmd.Dir = dir
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	r := stepRun{stdout: stdout.String(), stderr: stderr.String(), outputs: map[string]string{}}
	if ee, ok := err.(*exec.ExitError); ok {
		r.code = ee.ExitCode()
	} else if err != nil {
		t.Fatalf("running step %s: %v", id, err)
	}
	if b, err := os.ReadFile(outputs); err == nil {
		for _, line := range strings.Split(strings.TrimSuffix(string(b), "\n"), "\n") {
			if k, v, ok := strings.Cut(line, "="); ok {
				r.outputs[k] = v
			}
		}
	}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("step %s: exit %d\nstdout:\n%s\nstderr:\n%s", id, r.code, r.stdout, r.stderr)
		}
	})
	return r
}

// runnerEnv is what a GitHub runner sets for this machine, with a fresh
// tool cache and temporary directory unless given.
func runnerEnv(toolCache, temp string) []string {
	osName := map[string]string{"linux": "Linux", "darwin": "macOS"}[runtime.GOOS]
	arch := map[string]string{"amd64": "X64", "arm64": "ARM64"}[runtime.GOARCH]
	return []string{"RUNNER_OS=" + osName, "RUNNER_ARCH=" + arch, "RUNNER_TOOL_CACHE=" + toolCache, "RUNNER_TEMP=" + temp}
}

func actionContext(ref string) map[string]string {
	abs, _ := filepath.Abs(repoRoot)
	return map[string]string{"action_path": abs, "action_ref": ref, "action_repository": "deploy-broker/deploy-broker"}
}

func versionOf(t testing.TB, bin string) string {
	t.Helper()
	out, err := exec.Command(bin, "--version").CombinedOutput()
	if err != nil {
		t.Fatalf("%s --version: %v\n%s", bin, err, out)
	}
	return string(out)
}

func TestActionInstallsTheRelease(t *testing.T) {
	if runtime.GOOS != "linux" && runtime.GOOS != "darwin" {
		t.Skip("the action installs release binaries on Linux and macOS runners only")
	}
	rel := newTestRelease(t, "v9.9.9")
	toolCache, temp := t.TempDir(), t.TempDir()
	env := runnerEnv(toolCache, temp)
	with := map[string]string{"release-base-url": rel.url, "job": "echo-params"}

	// A fresh runner: downloads the archive and the checksums file,
	// checks the archive, installs it in the tool cache.
	r := runActionStep(t, "install", with, actionContext("v9.9.9"), nil, env)
	if r.code != 0 || r.outputs["build"] != "" {
		t.Fatalf("exit %d, outputs %v; want the release installed", r.code, r.outputs)
	}
	bin := r.outputs["path"]
	if !strings.HasPrefix(bin, temp+"/") {
		t.Errorf("path %q is not in RUNNER_TEMP (the job's own)", bin)
	}
	archive, _ := releaseNames(t, "9.9.9", runtime.GOOS, runtime.GOARCH)
	cached := filepath.Join(toolCache, "deploy-trigger", "9.9.9", runtime.GOOS+"-"+runtime.GOARCH, archive)
	if _, err := os.Stat(cached); err != nil {
		t.Errorf("the archive is not in the tool cache: %v", err)
	}
	if v := versionOf(t, bin); !strings.HasPrefix(v, "deploy-trigger v9.9.9 (commit 0123456789ab,") {
		t.Errorf("the installed binary says %q", v)
	}
	if got := len(rel.served()); got != 2 {
		t.Errorf("%d requests %v; want the checksums file and the archive", got, rel.served())
	}
	if !strings.Contains(r.stdout, "SHA-256 verified") {
		t.Error("the step did not say it verified the archive")
	}

	// The same runner again (a later step or job): the archive from the
	// cache, checked against the release's checksums file, fetched again
	// (one small request, no archive download).
	r = runActionStep(t, "install", with, actionContext("v9.9.9"), nil, env)
	if r.code != 0 || !strings.HasPrefix(r.outputs["path"], temp+"/") || len(rel.served()) != 3 {
		t.Fatalf("exit %d, outputs %v, requests %v; want the cached archive and only the checksums file", r.code, r.outputs, rel.served())
	}
	if !strings.Contains(r.stdout, "from the tool cache") {
		t.Error("the step did not say it used the tool cache")
	}

	// A cached archive that changed is not used: downloaded again.
	if err := os.WriteFile(cached, []byte("not the archive"), 0o644); err != nil {
		t.Fatal(err)
	}
	r = runActionStep(t, "install", with, actionContext("v9.9.9"), nil, env)
	if r.code != 0 || len(rel.served()) != 5 || !strings.Contains(r.stdout, "does not match the release's checksums file; downloading it again") {
		t.Fatalf("exit %d, requests %v; want a warning and a fresh download", r.code, rel.served())
	}
	if v := versionOf(t, r.outputs["path"]); !strings.HasPrefix(v, "deploy-trigger v9.9.9") {
		t.Errorf("after the re-download the binary says %q", v)
	}

	// The version input wins over the ref; a moving major tag reads
	// release-version; neither names a release for a branch.
	for _, tc := range []struct {
		ref, version, wantTag string
	}{
		{ref: "main", version: "v9.9.9", wantTag: "v9.9.9"},
		{ref: "v1", wantTag: strings.TrimSpace(readFile(t, filepath.Join(repoRoot, "release-version")))},
		{ref: "main", wantTag: ""},
		{ref: "0123456789abcdef0123456789abcdef01234567", wantTag: ""},
	} {
		// auto: the host serves v9.9.9 only; the release-version tag's
		// download fails and builds instead (only the request matters here)
		w := map[string]string{"release-base-url": rel.url, "job": "echo-params", "version": tc.version, "build-from-source": "auto"}
		before := len(rel.served())
		r := runActionStep(t, "install", w, actionContext(tc.ref), nil, runnerEnv(t.TempDir(), t.TempDir()))
		reqs := rel.served()[before:]
		switch {
		case r.code != 0:
			t.Errorf("ref %s version %q: exit %d", tc.ref, tc.version, r.code)
		case tc.wantTag == "" && (r.outputs["build"] != "true" || len(reqs) != 0):
			t.Errorf("ref %s: outputs %v, requests %v; want a source build without downloading", tc.ref, r.outputs, reqs)
		case tc.wantTag != "" && (len(reqs) == 0 || !strings.HasPrefix(reqs[0], "/"+tc.wantTag+"/")):
			t.Errorf("ref %s version %q: requests %v; want release %s", tc.ref, tc.version, reqs, tc.wantTag)
		}
	}
}

func TestActionRefusesABadChecksum(t *testing.T) {
	rel := newTestRelease(t, "v9.9.9")
	archive, sums := releaseNames(t, "9.9.9", runtime.GOOS, runtime.GOARCH)
	// The archive on the host is not the one the checksums file names.
	f, err := os.OpenFile(filepath.Join(rel.dir, "v9.9.9", archive), os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	f.Write([]byte("x"))
	f.Close()
	toolCache := t.TempDir()
	r := runActionStep(t, "install", map[string]string{"release-base-url": rel.url, "job": "x"}, actionContext("v9.9.9"), nil, runnerEnv(toolCache, t.TempDir()))
	if r.code == 0 || r.outputs["build"] == "true" || r.outputs["path"] != "" {
		t.Fatalf("exit %d, outputs %v; want the step to fail, not to fall back", r.code, r.outputs)
	}
	if !strings.Contains(r.stdout, "::error title=deploy-broker action::"+archive+": SHA-256") {
		t.Errorf("no error annotation naming the archive")
	}
	if _, err := os.Stat(filepath.Join(toolCache, "deploy-trigger")); err == nil {
		t.Error("something was installed in the tool cache")
	}

	// No entry for the archive in the checksums file: the same.
	writeFile(t, filepath.Join(rel.dir, "v9.9.9", sums), strings.Repeat("1", 64)+"  other.tar.gz\n")
	r = runActionStep(t, "install", map[string]string{"release-base-url": rel.url, "job": "x"}, actionContext("v9.9.9"), nil, runnerEnv(toolCache, t.TempDir()))
	if r.code == 0 || !strings.Contains(r.stdout, "(no entry)") {
		t.Fatalf("exit %d; want a failure saying the checksums file has no entry", r.code)
	}
}

// With build-from-source: auto, a tag with no release (or a release host that
// does not answer) falls back to building from the action's checkout;
// build-from-source: true always builds.
func TestActionFallsBackToSource(t *testing.T) {
	if testing.Short() {
		t.Skip("builds deploy-trigger from source; skipped with -short")
	}
	rel := newTestRelease(t, "v9.9.9")
	for name, tc := range map[string]struct {
		ref  string
		with map[string]string
	}{
		"the tag has no release, fallback opted in": {ref: "v9.9.8", with: map[string]string{"build-from-source": "auto"}},
		"build-from-source":                         {ref: "v9.9.9", with: map[string]string{"build-from-source": "true"}},
	} {
		t.Run(name, func(t *testing.T) {
			tc.with["release-base-url"] = rel.url
			tc.with["job"] = "x"
			temp := t.TempDir()
			before := len(rel.served())
			r := runActionStep(t, "install", tc.with, actionContext(tc.ref), nil, runnerEnv(t.TempDir(), temp))
			if r.code != 0 || r.outputs["build"] != "true" || !strings.HasPrefix(r.outputs["path"], temp+"/") {
				t.Fatalf("exit %d, outputs %v; want build=true and a path in RUNNER_TEMP", r.code, r.outputs)
			}
			if tc.with["build-from-source"] == "true" && len(rel.served()) != before {
				t.Errorf("build-from-source still downloaded %v", rel.served()[before:])
			}
			b := runActionStep(t, "build", tc.with, actionContext(tc.ref), map[string]map[string]string{"install": r.outputs}, runnerEnv(t.TempDir(), temp))
			if b.code != 0 {
				t.Fatalf("the build step failed with %d", b.code)
			}
			if v := versionOf(t, r.outputs["path"]); !strings.HasPrefix(v, "deploy-trigger "+tc.ref+" ") {
				t.Errorf("the built binary says %q, want version %s", v, tc.ref)
			}
		})
	}
}

// The whole path: the install step's real download, then the trigger step
// runs the binary it installed against the local broker.
func TestActionDownloadedBinaryRunsTheJob(t *testing.T) {
	if testing.Short() {
		t.Skip("starts the local broker (moto); skipped with -short")
	}
	rel := newTestRelease(t, "v9.9.9")
	b := localBroker(t)
	r := runActionStep(t, "install", map[string]string{"release-base-url": rel.url, "job": "echo-params"}, actionContext("v9.9.9"), nil, runnerEnv(t.TempDir(), t.TempDir()))
	if r.code != 0 || r.outputs["path"] == "" {
		t.Fatalf("install: exit %d, outputs %v", r.code, r.outputs)
	}
	res := runTriggerStepWith(t, map[string]string{"topic-arn": b.TopicARN(), "job": "echo-params", "parameters": "greeting=from the release\ncode=0"}, r.outputs["path"])
	if res.code != 0 || !strings.Contains(res.stdout, "greeting=[from the release]") {
		t.Fatalf("exit %d; want the job's output", res.code)
	}
}

// TestActionInstallsTheSnapshotRelease points the install step at what
// GoReleaser itself produced (make release-snapshot): the archive and
// checksums names, the archive layout and the stamped version are the
// real ones.
func TestActionInstallsTheSnapshotRelease(t *testing.T) {
	rel := snapshotRelease(t)
	if rel == nil {
		t.Skip("no GoReleaser snapshot in dist/ (make release-snapshot makes one), so the action was not run against a real release")
	}
	r := runActionStep(t, "install", map[string]string{"release-base-url": rel.url, "job": "x"}, actionContext(rel.tag), nil, runnerEnv(t.TempDir(), t.TempDir()))
	if r.code != 0 || r.outputs["build"] != "" {
		t.Fatalf("exit %d, outputs %v; want the snapshot release installed", r.code, r.outputs)
	}
	if v := versionOf(t, r.outputs["path"]); !strings.HasPrefix(v, "deploy-trigger "+rel.tag+" (commit ") {
		t.Errorf("the installed binary says %q, want %s", v, rel.tag)
	}
}

// BenchmarkActionStart measures the time from the action's first step to
// deploy-trigger running (the install step ends by running
// deploy-trigger --version), for docs/BENCHMARKS.md:
//
//	go test -run '^$' -bench ActionStart -benchtime 10x ./cisteps
//	DEPLOY_BROKER_BENCH_SOURCE=1 go test -run '^$' -bench ActionStart/source -benchtime 3x ./cisteps
//
// cached: the binary is in the tool cache. download: a fresh tool cache,
// the release from a local HTTP server (GoReleaser's dist/ when make
// release-snapshot made one). source: the build-from-source path (the only
// path before releases): the build step with empty Go build and module
// caches, modules from GOPROXY, as setup-go with cache: false leaves them;
// setup-go's own Go download is not included. Opt-in, it takes minutes.
func BenchmarkActionStart(b *testing.B) {
	rel := snapshotRelease(b)
	if rel == nil {
		rel = newTestRelease(b, "v9.9.9")
	}
	with := map[string]string{"release-base-url": rel.url, "job": "x"}
	ctx := actionContext(rel.tag)
	b.Run("cached", func(b *testing.B) {
		env := runnerEnv(b.TempDir(), b.TempDir())
		if r := runActionStep(b, "install", with, ctx, nil, env); r.code != 0 {
			b.Fatalf("install: exit %d", r.code)
		}
		b.ResetTimer()
		for i := 0; i < b.N; i++ {
			if r := runActionStep(b, "install", with, ctx, nil, env); r.code != 0 || !strings.Contains(r.stdout, "from the tool cache") {
				b.Fatalf("install: exit %d, not from the cache", r.code)
			}
		}
	})
	b.Run("download", func(b *testing.B) {
		for i := 0; i < b.N; i++ {
			env := runnerEnv(b.TempDir(), b.TempDir())
			if r := runActionStep(b, "install", with, ctx, nil, env); r.code != 0 || !strings.Contains(r.stdout, "SHA-256 verified") {
				b.Fatalf("install: exit %d, not downloaded", r.code)
			}
		}
	})
	b.Run("source", func(b *testing.B) {
		if os.Getenv("DEPLOY_BROKER_BENCH_SOURCE") == "" {
			b.Skip("set DEPLOY_BROKER_BENCH_SOURCE=1: cold builds from source take about a minute each")
		}
		src := map[string]string{"build-from-source": "true", "job": "x"}
		for i := 0; i < b.N; i++ {
			dir := b.TempDir()
			env := append(runnerEnv(filepath.Join(dir, "tools"), filepath.Join(dir, "temp")),
				"GOCACHE="+filepath.Join(dir, "gocache"), "GOMODCACHE="+filepath.Join(dir, "gomodcache"))
			os.MkdirAll(filepath.Join(dir, "temp"), 0o755)
			r := runActionStep(b, "install", src, ctx, nil, env)
			if r.code != 0 || r.outputs["build"] != "true" {
				b.Fatalf("install: exit %d, outputs %v", r.code, r.outputs)
			}
			if r := runActionStep(b, "build", src, ctx, map[string]map[string]string{"install": r.outputs}, env); r.code != 0 {
				b.Fatalf("build: exit %d\n%s", r.code, r.stderr)
			}
			b.StopTimer()
			exec.Command("chmod", "-R", "u+w", dir).Run()
			b.StartTimer()
		}
	})
}

// Review finding 3: whoever could write the tool cache (an earlier job on a
// shared self-hosted runner) can replace every file in it, hashes included.
// The install step never runs what the cache holds unless it matches the
// release's checksums file, fetched again on every use.
func TestActionChecksTheToolCacheAgainstTheRelease(t *testing.T) {
	if runtime.GOOS != "linux" && runtime.GOOS != "darwin" {
		t.Skip("the action installs release binaries on Linux and macOS runners only")
	}
	rel := newTestRelease(t, "v9.9.9")
	toolCache := t.TempDir()
	with := map[string]string{"release-base-url": rel.url, "job": "echo-params"}
	r := runActionStep(t, "install", with, actionContext("v9.9.9"), nil, runnerEnv(toolCache, t.TempDir()))
	if r.code != 0 {
		t.Fatalf("first install: exit %d", r.code)
	}
	// GIVEN a tool cache whose every file an earlier job replaced
	// consistently: the binary, any recorded hash, any archive
	evil := []byte("#!/bin/sh\necho tampered\n")
	tgz := triggerArchive(evil)
	replaced := 0
	filepath.WalkDir(filepath.Join(toolCache, "deploy-trigger"), func(p string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() || strings.HasSuffix(p, ".complete") {
			return err
		}
		var content []byte
		switch {
		case strings.HasSuffix(p, ".tar.gz"):
			content = tgz
		case strings.HasSuffix(p, ".sha256"):
			sum := sha256.Sum256(evil)
			content = []byte(hex.EncodeToString(sum[:]) + "\n")
		default:
			content = evil
		}
		replaced++
		return os.WriteFile(p, content, 0o755)
	})
	if replaced == 0 {
		t.Fatal("nothing in the tool cache to replace")
	}
	// WHEN a later job installs the same release
	before := len(rel.served())
	r = runActionStep(t, "install", with, actionContext("v9.9.9"), nil, runnerEnv(toolCache, t.TempDir()))
	// THEN it asked the release for its checksums, and what it installed
	// is the release's binary (or it failed): never the cache's
	reqs := rel.served()[before:]
	_, sums := releaseNames(t, "9.9.9", runtime.GOOS, runtime.GOARCH)
	if len(reqs) == 0 || reqs[0] != "/v9.9.9/"+sums {
		t.Errorf("requests %v; want the release's checksums file first", reqs)
	}
	if r.code == 0 {
		if v := versionOf(t, r.outputs["path"]); !strings.HasPrefix(v, "deploy-trigger v9.9.9") {
			t.Errorf("the install step handed on a binary that says %q", v)
		}
	}
}

// Review finding 8: the download is https-only (plain http only for a
// loopback mirror, as these tests use), and a failed download, which anyone
// who can block the network can cause, fails the step unless the workflow
// opted into building from source.
func TestActionDownloadIsHTTPSOnlyAndFallbackIsOptIn(t *testing.T) {
	if runtime.GOOS != "linux" && runtime.GOOS != "darwin" {
		t.Skip("the action installs release binaries on Linux and macOS runners only")
	}
	// A loopback port nothing listens on: the download fails.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	dead := "http://" + l.Addr().String()
	l.Close()
	for _, tc := range []struct {
		name, ref  string
		with       map[string]string
		wantBuild  bool
		wantStdout string
	}{
		{name: "http to a remote host", ref: "v9.9.9", with: map[string]string{"release-base-url": "http://releases.example.com/dl"},
			wantStdout: "release-base-url must be an https:// URL"},
		{name: "failed download of a release", ref: "v9.9.9", with: map[string]string{"release-base-url": dead},
			wantStdout: "build-from-source: auto"},
		{name: "failed download, fallback opted in", ref: "v9.9.9", with: map[string]string{"release-base-url": dead, "build-from-source": "auto"},
			wantBuild: true},
		{name: "branch, default", ref: "main", with: map[string]string{"release-base-url": dead}, wantBuild: true},
		{name: "branch, fallback refused", ref: "main", with: map[string]string{"release-base-url": dead, "build-from-source": "false"},
			wantStdout: "names no release"},
		{name: "bad value", ref: "v9.9.9", with: map[string]string{"release-base-url": dead, "build-from-source": "yes"},
			wantStdout: "build-from-source must be"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tc.with["job"] = "x"
			r := runActionStep(t, "install", tc.with, actionContext(tc.ref), nil, runnerEnv(t.TempDir(), t.TempDir()))
			if tc.wantBuild {
				if r.code != 0 || r.outputs["build"] != "true" {
					t.Errorf("exit %d, outputs %v; want a source build", r.code, r.outputs)
				}
				return
			}
			if r.code == 0 || r.outputs["build"] == "true" || r.outputs["path"] != "" {
				t.Errorf("exit %d, outputs %v; want the step to fail without a fallback", r.code, r.outputs)
			}
			if !strings.Contains(r.stdout, tc.wantStdout) {
				t.Errorf("stdout %q does not say %q", r.stdout, tc.wantStdout)
			}
		})
	}
}
