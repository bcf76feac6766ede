package config

import (
	"os"
	"testing"
)

// FuzzParse: the configuration parser never panics, and a configuration it
// accepts can render every job's command with or without parameters; a job
// with no required parameter renders from its defaults alone (Parse has
// checked every default, including where it would begin an argument).
func FuzzParse(f *testing.F) {
	if b, err := os.ReadFile("../../examples/broker.yaml"); err == nil {
		f.Add(b)
	}
	f.Add([]byte("broker: {name: b}\ntrusted_principals: [\"123456789012\"]\nrunner: {image: i}\njobs:\n  j:\n    command: [/bin/true, \"{{x}}-{{ x }}\"]\n    params: {x: {type: int, min: 1, max: 3, default: \"2\"}}\n"))
	f.Add([]byte("broker: {name: b}\ntrusted_principals: [\"123456789012\"]\nrunner: {image: i}\njobs:\n  j:\n    command: [/bin/true, \"{{x}}\"]\n    params: {x: {type: string, pattern: \"(a|b\"}}\n"))
	f.Add([]byte("broker: {name: b}\ntrusted_principals: [\"123456789012\"]\nrunner: {image: i}\njobs:\n  j:\n    command: [/bin/sh, -c, 'echo \"$1\"', sh, \"{{x}}{{y}}\"]\n    params: {x: {type: int, min: -3, allow_leading_dash: true, default: \"-2\"}, y: {type: string, pattern: '[a-z-]*', default: \"\"}}\n"))
	f.Add([]byte("broker: {name: b, queue_retention: -1h}\n"))
	f.Add([]byte("a: &a [*a]\n"))
	f.Add([]byte("--- {}\n--- {}\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		c, err := Parse(b)
		if err != nil {
			return
		}
		for _, name := range c.JobNames() {
			j := c.Jobs[name]
			params := map[string]string{}
			for p, decl := range j.Params {
				if decl.Default != nil {
					params[p] = *decl.Default
				} else if len(decl.Values) > 0 {
					params[p] = decl.Values[0]
				}
			}
			_, _ = j.Render(params)
			required := false
			for _, decl := range j.Params {
				required = required || decl.Required
			}
			if _, err := j.Render(nil); err != nil && !required {
				t.Fatalf("job %q has no required parameter but does not render from its defaults: %v", name, err)
			}
			_ = j.RedactNames()
		}
	})
}
