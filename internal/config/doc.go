// Package config is the broker configuration file: one YAML document that
// drives both the local broker and the CDK stack. It names the trusted CI
// principals, the network, the runner settings and the job catalogue, the
// only list of commands, images and roles the broker will ever run.
//
// Load reads and validates it strictly (unknown keys are errors), so a bad
// catalogue fails at start-up, not on a request. Job.Render turns a request's
// parameters into the job's argv: each parameter is substituted inside argv
// elements and validated against its declaration first; nothing is ever
// joined into a shell string. Load refuses a catalogue that would let request
// data become code or go unchecked: a parameter in a shell's -c command
// string, options or script name; an optional parameter without a default.
// Render refuses a value with control or invisible format characters, and
// one that would begin an argv element with '-' (an option) unless its
// parameter has allow_leading_dash.
package config
