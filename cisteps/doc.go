// Package cisteps holds the tests of deploy-broker's CI integrations, which
// are not Go: the GitHub Action (action.yml at the repository root), the
// Jenkins shared-library step (vars/deployTrigger.groovy) and the examples
// in examples/github and examples/jenkins (docs/CI.md describes them all).
//
// The tests check action.yml statically (every input used is declared and
// every declared one used, every output wired to a step that sets it), run
// the action's own deploy-trigger step script with bash against the local
// broker (internal/localbroker) and read the outputs and step summary from
// real files, and, when the Debian groovy package is installed, parse the
// Groovy files and run the Jenkins step with stubbed Pipeline steps.
//
// They also check the release packaging the action depends on: the
// action's install step against a local release host (download, checksum,
// tool cache, fallback to a source build), .goreleaser.yaml (goreleaser
// check and a single-target snapshot build, when GoReleaser is installed:
// scripts/install-goreleaser.sh), and the runner's Dockerfile (statically,
// and its build stage replayed as a script, since no image builder runs
// here).
//
// The package has no code of its own outside its tests.
package cisteps
