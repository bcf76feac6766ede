package reliability

import (
	"fmt"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/deploy-broker/deploy-broker/internal/localbroker"
	"github.com/deploy-broker/deploy-broker/internal/testkit/e2etest"
	"github.com/deploy-broker/deploy-broker/internal/testkit/faultproxy"
)

// TestConcurrencyOneUnderFaults: 20 runs of a `concurrency: 1, on_full:
// queue` job requested at once, with 10% of AWS calls failing (every kind of
// fault, RunTask excepted as in TestRunsSurviveTenPercentFaults): the runs
// never overlap (each job prints its own start and end time), every one
// ends with the job's exit code (none lost, none stuck waiting).
func TestConcurrencyOneUnderFaults(t *testing.T) {
	if testing.Short() {
		t.Skip("long fault scenario; run without -short")
	}
	const runs = 20
	b, proxy := e2etest.StartBrokerBehindProxy(t, bins, configPath, localbroker.Options{}, faultproxy.Options{
		Rates: faultproxy.Spread(0.10), Seed: 16, LatencySpike: 200 * time.Millisecond,
		Match: func(service, action string) bool { return !(service == "ecs" && action == "RunTask") },
	})
	// The trigger reaches the proxy through the broker's own endpoint
	// (b.Env: local mode's account shim in front of the proxy), as in
	// TestRunsSurviveTenPercentFaults.
	var env []string

	type span struct {
		tag        string
		start, end int64
	}
	var mu sync.Mutex
	var spans []span
	var queuedSeen, ok int
	var wg sync.WaitGroup
	began := time.Now()
	for i := 0; i < runs; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			tag := fmt.Sprintf("s%02d", i)
			r := e2etest.Trigger{Bins: bins, Env: env}.Run(t, b, "serial", "tag="+tag)
			sp := span{tag: tag}
			for _, l := range strings.Split(r.Stdout, "\n") {
				f := strings.Fields(l)
				if len(f) != 3 || f[1] != tag {
					continue
				}
				n, _ := strconv.ParseInt(f[2], 10, 64)
				switch f[0] {
				case "START":
					sp.start = n
				case "END":
					sp.end = n
				}
			}
			mu.Lock()
			defer mu.Unlock()
			if strings.Contains(r.Stderr, "queued: position") {
				queuedSeen++
			}
			if r.Code != 0 || sp.start == 0 || sp.end == 0 {
				t.Errorf("run %s: exit %d, start %d, end %d\n%s", tag, r.Code, sp.start, sp.end, e2etest.Tail(r.Stderr, 15))
				return
			}
			ok++
			spans = append(spans, sp)
		}(i)
	}
	wg.Wait()
	sort.Slice(spans, func(i, j int) bool { return spans[i].start < spans[j].start })
	overlaps := 0
	for i := 1; i < len(spans); i++ {
		if spans[i].start < spans[i-1].end {
			overlaps++
			t.Errorf("run %s started %v before run %s ended", spans[i].tag, time.Duration(spans[i-1].end-spans[i].start), spans[i-1].tag)
		}
	}
	st := proxy.Stats()
	t.Logf("RESULT scenario=concurrency_one_faults runs=%d ended_ok=%d overlaps=%d runs_that_showed_queued=%d requests_exposed=%d faults=%d measured_fault_rate=%.3f elapsed_s=%.1f",
		runs, ok, overlaps, queuedSeen, st.Matched, st.Faults(), st.FaultRate(), time.Since(began).Seconds())
	if st.Faults() == 0 {
		t.Errorf("the proxy injected no faults in %d requests", st.Requests)
	}
}
