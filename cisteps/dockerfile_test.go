package cisteps

import (
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strings"
	"testing"
)

// No image builder runs where these tests run (no Docker engine), so the
// runner image's Dockerfile is checked statically, and its build stage is
// replayed: the files its COPY lines take, then its go build RUN line as a
// shell script, against an empty module cache.

// dockerInstr is one Dockerfile instruction, continuation lines joined.
type dockerInstr struct {
	cmd, args string
	line      int
}

func parseDockerfile(t *testing.T) []dockerInstr {
	t.Helper()
	var out []dockerInstr
	var cur strings.Builder
	start := 0
	for i, line := range strings.Split(readFile(t, filepath.Join(repoRoot, "Dockerfile")), "\n") {
		trimmed := strings.TrimSpace(line)
		if cur.Len() == 0 && (trimmed == "" || strings.HasPrefix(trimmed, "#")) {
			continue
		}
		if cur.Len() == 0 {
			start = i + 1
		}
		if strings.HasSuffix(trimmed, "\\") {
			cur.WriteString(strings.TrimSuffix(trimmed, "\\") + " ")
			continue
		}
		cur.WriteString(trimmed)
		cmd, args, _ := strings.Cut(cur.String(), " ")
		out = append(out, dockerInstr{cmd: strings.ToUpper(cmd), args: strings.TrimSpace(args), line: start})
		cur.Reset()
	}
	return out
}

// dockerStages splits the instructions by FROM; each stage's first
// instruction is its FROM.
func dockerStages(instrs []dockerInstr) map[string][]dockerInstr {
	stages := map[string][]dockerInstr{}
	name := ""
	for _, in := range instrs {
		if in.cmd == "FROM" {
			f := strings.Fields(in.args)
			name = f[len(f)-1]
		}
		stages[name] = append(stages[name], in)
	}
	return stages
}

var (
	digestRE  = regexp.MustCompile(`^[\w./-]+:[\w.-]+@sha256:[0-9a-f]{64}$`)
	cdkModRE  = regexp.MustCompile(`aws-cdk-go|constructs-go|jsii-runtime-go|cdk-nag-go|awscdk-asset|cloud-assembly-schema`)
	userRE    = regexp.MustCompile(`^(\d+)(:\d+)?$`)
	mountRE   = regexp.MustCompile(`--mount=\S+\s*`)
	targetsRE = regexp.MustCompile(`GOOS=\$TARGETOS\b.*GOARCH=\$TARGETARCH\b`)
)

func TestDockerfile(t *testing.T) {
	instrs := parseDockerfile(t)
	stages := dockerStages(instrs)
	for _, in := range instrs {
		switch in.cmd {
		case "FROM":
			f := strings.Fields(in.args)
			image := f[0]
			if strings.HasPrefix(image, "--platform=") {
				image = f[1]
			}
			if image != "scratch" && stages[image] == nil && !digestRE.MatchString(image) {
				t.Errorf("Dockerfile:%d: base %s is not pinned to a tag and a digest (image:tag@sha256:…)", in.line, image)
			}
			if strings.Contains(image, "$") {
				t.Errorf("Dockerfile:%d: base %s comes from an ARG; write it out so that the digest is visible and checked", in.line, image)
			}
		case "RUN":
			if regexp.MustCompile(`go mod download\s*($|&&|;)`).MatchString(in.args) {
				t.Errorf("Dockerfile:%d: `go mod download` with no module fetches every module in go.mod, the CDK's among them; build the runner's package only", in.line)
			}
		case "COPY", "ADD":
			f := strings.Fields(in.args)
			for _, src := range f[:len(f)-1] {
				if strings.HasPrefix(src, "--") {
					continue
				}
				if src == "." || src == "./" || strings.HasPrefix(src, "infra") {
					t.Errorf("Dockerfile:%d: %s copies more than the runner's Go sources", in.line, in.args)
				}
			}
		}
	}

	build := stages["build"]
	if build == nil || !strings.HasPrefix(build[0].args, "--platform=$BUILDPLATFORM ") {
		t.Fatal("no stage named build, or it does not run on $BUILDPLATFORM (cross-compiling for every target platform)")
	}
	// The final stage (the image) runs as a numeric non-root user.
	last := instrs[0]
	for _, in := range instrs {
		if in.cmd == "FROM" {
			last = in
		}
	}
	final := stages[strings.Fields(last.args)[len(strings.Fields(last.args))-1]]
	user := ""
	for _, in := range final {
		switch in.cmd {
		case "USER":
			user = in.args
		case "ENTRYPOINT":
			if in.args != `["/usr/local/bin/deploy-runner"]` {
				t.Errorf("the image's ENTRYPOINT is %s, want [\"/usr/local/bin/deploy-runner\"] (the path docs tell users to COPY --from)", in.args)
			}
		}
	}
	if m := userRE.FindStringSubmatch(user); m == nil || m[1] == "0" {
		t.Errorf("the image's USER is %q; want a numeric non-root uid (Kubernetes' runAsNonRoot and ECS can check it)", user)
	}

	// Every COPY source of the build stage is in the build context that
	// .dockerignore leaves.
	ignore := readFile(t, filepath.Join(repoRoot, ".dockerignore"))
	for _, in := range build {
		if in.cmd != "COPY" {
			continue
		}
		f := strings.Fields(in.args)
		for _, src := range f[:len(f)-1] {
			if !strings.Contains(ignore, "\n!"+src+"\n") && !strings.Contains(ignore, "\n!"+strings.TrimSuffix(src, "/")+"\n") {
				t.Errorf("Dockerfile:%d: %s is left out of the build context by .dockerignore", in.line, src)
			}
		}
	}
}

// TestDockerfileBuildStep replays the build stage: its COPY lines into a
// temporary WORKDIR, then its RUN go build line (cache mounts dropped) with
// bash, with an empty module cache fed by a file proxy of this machine's
// cache. The runner must build, and no CDK module may have been fetched.
func TestDockerfileBuildStep(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the runner; skipped with -short")
	}
	build := dockerStages(parseDockerfile(t))["build"]
	root, err := filepath.Abs(repoRoot)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	work, out, modcache := filepath.Join(dir, "src"), filepath.Join(dir, "out"), filepath.Join(dir, "modcache")
	env := []string{}
	var script string
	for _, in := range build {
		switch in.cmd {
		case "WORKDIR":
			if in.args != "/src" {
				t.Fatalf("the build stage's WORKDIR is %s; this test expects /src", in.args)
			}
		case "COPY":
			f := strings.Fields(in.args)
			dst := filepath.Join(work, f[len(f)-1])
			for _, src := range f[:len(f)-1] {
				copyTree(t, filepath.Join(root, src), dst, strings.HasSuffix(f[len(f)-1], "/") && !strings.HasSuffix(src, "/"))
			}
		case "ARG":
			name, _, _ := strings.Cut(in.args, "=")
			switch name {
			case "TARGETOS":
				env = append(env, "TARGETOS="+runtime.GOOS)
			case "TARGETARCH":
				env = append(env, "TARGETARCH="+runtime.GOARCH)
			}
		case "RUN":
			if strings.Contains(in.args, "go build") {
				script = mountRE.ReplaceAllString(in.args, "")
			}
		}
	}
	if script == "" {
		t.Fatal("the build stage has no RUN … go build line")
	}
	if !targetsRE.MatchString(script) || !strings.Contains(script, "./cmd/runner") || !strings.Contains(script, "CGO_ENABLED=0") {
		t.Errorf("the build line %q does not build ./cmd/runner statically for $TARGETOS/$TARGETARCH", script)
	}
	script = strings.ReplaceAll(script, "/out/", out+"/")

	// Make sure this machine's module cache holds what the runner needs,
	// then serve that cache as the module proxy: offline, and the new
	// cache shows exactly what the build fetched.
	gomodcache, err := exec.Command("go", "env", "GOMODCACHE").Output()
	if err != nil {
		t.Fatal(err)
	}
	list := exec.Command("go", "list", "-deps", "./cmd/runner")
	list.Dir = root
	if b, err := list.CombinedOutput(); err != nil {
		t.Fatalf("go list -deps ./cmd/runner: %v\n%s", err, b)
	}
	cmd := exec.Command("bash", "-euo", "pipefail", "-c", script)
	cmd.Dir = work
	cmd.Env = append(os.Environ(), env...)
	cmd.Env = append(cmd.Env,
		"GOMODCACHE="+modcache,
		"GOPROXY=file://"+filepath.Join(strings.TrimSpace(string(gomodcache)), "cache", "download"),
		"GONOSUMDB=*", "GOFLAGS=", "GOTOOLCHAIN=local", "GOWORK=off",
	)
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("the Dockerfile's build step failed: %v\n%s\n%s", err, script, b)
	}
	if v, err := exec.Command(filepath.Join(out, "deploy-runner"), "--help").CombinedOutput(); len(v) == 0 {
		t.Errorf("the built runner printed nothing for --help (%v)", err)
	}
	var zips []string
	var size int64
	filepath.WalkDir(filepath.Join(modcache, "cache", "download"), func(p string, d fs.DirEntry, err error) error {
		if err == nil && strings.HasSuffix(p, ".zip") {
			rel, _ := filepath.Rel(filepath.Join(modcache, "cache", "download"), p)
			zips = append(zips, rel)
			if info, err := d.Info(); err == nil {
				size += info.Size()
			}
			if cdkModRE.MatchString(rel) {
				t.Errorf("the runner's build fetched the CDK module %s", rel)
			}
		}
		return nil
	})
	if len(zips) == 0 {
		t.Error("the build fetched no module at all: is the module cache really empty?")
	}
	t.Logf("the build step fetched %d modules, %.1f MB zipped: %v", len(zips), float64(size)/1e6, zips)
	// Module caches are read-only; let t.TempDir remove it.
	exec.Command("chmod", "-R", "u+w", modcache).Run()
}

// copyTree copies src (a file or a directory) to dst, as COPY does.
func copyTree(t *testing.T, src, dst string, into bool) {
	t.Helper()
	st, err := os.Stat(src)
	if err != nil {
		t.Fatalf("COPY source: %v", err)
	}
	if !st.IsDir() {
		if into {
			dst = filepath.Join(dst, filepath.Base(src))
		}
		os.MkdirAll(filepath.Dir(dst), 0o755)
		b, err := os.ReadFile(src)
		if err != nil {
			t.Fatal(err)
		}
		writeFile(t, dst, string(b))
		return
	}
	err = filepath.WalkDir(src, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(src, p)
		target := filepath.Join(dst, rel)
		if d.IsDir() {
			return os.MkdirAll(target, 0o755)
		}
		if !d.Type().IsRegular() {
			return nil
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		return os.WriteFile(target, b, 0o644)
	})
	if err != nil {
		t.Fatal(err)
	}
}
