package broker

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/aws/aws-cdk-go/awscdk/v2"
	"github.com/aws/jsii-runtime-go"
	"github.com/cdklabs/cdk-nag-go/cdknag/v2"

	"github.com/deploy-broker/deploy-broker/internal/config"
)

// ConfigContextKey is the CDK context key naming the configuration file
// (cdk synth -c config=path/to/broker.yaml).
const ConfigContextKey = "config"

// DefaultConfigPath is used when no configuration is named: the example,
// relative to infra/ where cdk runs.
const DefaultConfigPath = "../examples/broker.yaml"

// Options configure NewApp. The zero value is what infra/main.go uses.
type Options struct {
	// ConfigPath overrides the "config" context.
	ConfigPath string
	// RepoRoot is the module root; empty finds go.mod above the working
	// directory.
	RepoRoot string
	// Build builds the dispatcher; nil means GoBuild.
	Build BuildFunc
	// AppProps are passed to awscdk.NewApp (tests set Outdir).
	AppProps *awscdk.AppProps
}

// App is the CDK app with its one broker stack.
type App struct {
	awscdk.App
	Stack  *Stack
	Config *config.Config
}

// NewApp reads and validates the broker configuration and builds the app:
// one stack, named after the broker, checked by the cdk-nag AwsSolutions
// pack. Every problem is returned as an error.
func NewApp(opts Options) (*App, error) {
	app := awscdk.NewApp(opts.AppProps)
	path := opts.ConfigPath
	if path == "" {
		path = DefaultConfigPath
		if v, ok := app.Node().TryGetContext(jsii.String(ConfigContextKey)).(string); ok && v != "" {
			path = v
		}
	}
	abs, err := filepath.Abs(path)
	if err != nil {
		return nil, err
	}
	cfg, err := config.Load(abs)
	if err != nil {
		return nil, err
	}
	root := opts.RepoRoot
	if root == "" {
		if root, err = findModuleRoot(); err != nil {
			return nil, err
		}
	}
	stack, err := NewStack(app, cfg.Broker.Name, &StackProps{Config: cfg, ConfigPath: abs, RepoRoot: root, Build: opts.Build})
	if err != nil {
		return nil, fmt.Errorf("broker configuration %s: %w", abs, err)
	}
	awscdk.Aspects_Of(app).Add(cdknag.NewAwsSolutionsChecks(&cdknag.NagPackProps{Verbose: jsii.Bool(true)}), nil)
	return &App{App: app, Stack: stack, Config: cfg}, nil
}

// findModuleRoot walks up from the working directory to the go.mod that
// holds cmd/dispatcher-lambda.
func findModuleRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			if _, err := os.Stat(filepath.Join(dir, DispatcherPackage)); err == nil {
				return dir, nil
			}
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("cannot find the deploy-broker module root (go.mod with cmd/dispatcher-lambda) above the working directory")
		}
		dir = parent
	}
}
