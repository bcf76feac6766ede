package iamcheck

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"

	"github.com/aws/aws-cdk-go/awscdk/v2"
	"github.com/aws/jsii-runtime-go"

	"github.com/deploy-broker/deploy-broker/infra/internal/broker"
)

// Template is a synthesized CloudFormation template.
type Template struct {
	Resources map[string]Resource
}

// Resource is one template resource.
type Resource struct {
	Type       string
	Properties map[string]any
	Condition  string
}

// Synth synthesizes the broker stack of the configuration at configPath
// into outDir and returns its template. The dispatcher's code is a
// placeholder: policies do not depend on it.
func Synth(repoRoot, configPath, outDir string) (*Template, error) {
	var t *Template
	err := func() (err error) {
		defer func() {
			if r := recover(); r != nil {
				err = fmt.Errorf("synthesizing %s: %v", configPath, r)
			}
		}()
		app, err := broker.NewApp(broker.Options{ConfigPath: configPath, RepoRoot: repoRoot,
			Build: func(_, out string) error {
				return os.WriteFile(filepath.Join(out, "bootstrap"), []byte("#!/bin/sh\n"), 0o755)
			},
			AppProps: &awscdk.AppProps{Outdir: jsii.String(outDir)}})
		if err != nil {
			return err
		}
		asm := app.Synth(nil)
		st := asm.GetStackByName(app.Stack.Stack.StackName())
		raw, err := os.ReadFile(filepath.Join(outDir, *st.TemplateFile()))
		if err != nil {
			return err
		}
		t = &Template{}
		return json.Unmarshal(raw, t)
	}()
	return t, err
}
