// Package reliability is the reliability and security suite: the real
// binaries through the local broker with faults injected between them and
// the emulator, runners killed mid-stream, tasks that never start, requests
// delivered more than once, concurrent runs, and hostile requests. Each test
// logs its figures as "RESULT name=value …" lines; docs/RELIABILITY.md
// collects them with the commands that reproduce them.
package reliability

import (
	"testing"

	"github.com/deploy-broker/deploy-broker/internal/testkit/e2etest"
)

var bins e2etest.Bins

func TestMain(m *testing.M) { e2etest.Main(m, &bins) }

const configPath = "testdata/broker.yaml"
