package broker

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"sync"

	"github.com/aws/aws-cdk-go/awscdk/v2"
	"github.com/aws/aws-cdk-go/awscdk/v2/awslambda"
	"github.com/aws/aws-cdk-go/awscdk/v2/awss3assets"
	"github.com/aws/jsii-runtime-go"
)

// DispatcherPackage is the dispatcher Lambda's main package, relative to the
// repository root.
const DispatcherPackage = "./cmd/dispatcher-lambda"

// BundledConfigName is the configuration file's name in the Lambda package;
// the function finds it at /var/task/broker.yaml.
const BundledConfigName = "broker.yaml"

// BuildFunc builds the dispatcher's "bootstrap" executable into outDir from
// the module at repoRoot.
type BuildFunc func(repoRoot, outDir string) error

// GoBuild cross-compiles the dispatcher for provided.al2023 on arm64: a
// static, stripped, reproducible binary (no VCS stamp, trimmed paths), so
// the asset hash changes only when the code does.
func GoBuild(repoRoot, outDir string) error {
	cmd := exec.Command("go", "build", "-tags", "lambda.norpc", "-trimpath", "-buildvcs=false", "-ldflags=-s",
		"-o", filepath.Join(outDir, "bootstrap"), DispatcherPackage)
	cmd.Dir = repoRoot
	cmd.Env = append(os.Environ(), "GOOS=linux", "GOARCH=arm64", "CGO_ENABLED=0")
	out, err := cmd.CombinedOutput()
	if err != nil {
		return fmt.Errorf("go build %s (GOOS=linux GOARCH=arm64 CGO_ENABLED=0) in %s: %w\n%s", DispatcherPackage, repoRoot, err, out)
	}
	return nil
}

// localBundling is CDK's local bundling hook: CDK calls TryBundle when it
// stages the asset (only for stacks being synthesized).
type localBundling struct {
	build      BuildFunc
	repoRoot   string
	configPath string

	mu  sync.Mutex
	err error
}

var _ awscdk.ILocalBundling = (*localBundling)(nil)

// TryBundle always answers true, so CDK never falls back to Docker: on
// failure it leaves outputDir empty, CDK fails with "Bundling did not produce
// any output", and NewStack reports the recorded build error instead.
func (b *localBundling) TryBundle(outputDir *string, _ *awscdk.BundlingOptions) *bool {
	err := b.bundle(*outputDir)
	if err != nil {
		entries, _ := os.ReadDir(*outputDir)
		for _, e := range entries {
			os.RemoveAll(filepath.Join(*outputDir, e.Name()))
		}
	}
	b.mu.Lock()
	b.err = err
	b.mu.Unlock()
	return jsii.Bool(true)
}

func (b *localBundling) bundle(outDir string) error {
	if err := b.build(b.repoRoot, outDir); err != nil {
		return err
	}
	if _, err := os.Stat(filepath.Join(outDir, "bootstrap")); err != nil {
		return errors.New("the build produced no bootstrap executable")
	}
	return copyFile(b.configPath, filepath.Join(outDir, BundledConfigName))
}

// Err is the last bundling failure, if any.
func (b *localBundling) Err() error {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.err
}

// dispatcherCode is the Lambda code asset: bootstrap and broker.yaml, hashed
// by content.
func dispatcherCode(b *localBundling) (awslambda.Code, error) {
	sum, err := fileSHA256(b.configPath)
	if err != nil {
		return nil, err
	}
	return awslambda.Code_FromAsset(jsii.String(filepath.Join(b.repoRoot, DispatcherPackage)), &awss3assets.AssetOptions{
		AssetHashType: awscdk.AssetHashType_OUTPUT,
		Bundling: &awscdk.BundlingOptions{
			// Never pulled: local bundling always answers, or synth fails.
			Image: awscdk.DockerImage_FromRegistry(jsii.String("deploy-broker-local-go-build-only")),
			Local: b,
			// Part of CDK's staging cache key: two stacks built from different
			// configuration files in one process never share a bundle.
			Environment: &map[string]*string{"DEPLOY_BROKER_CONFIG_SHA256": jsii.String(sum)},
		},
	}), nil
}

func fileSHA256(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return "", err
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

func copyFile(src, dst string) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_CREATE|os.O_TRUNC|os.O_WRONLY, 0o644)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}
