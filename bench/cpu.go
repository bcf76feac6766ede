package main

// CPU accounting of an e2e run: where the machine's CPU went, per process,
// from /proc (Linux). On 2 vCPUs the end-to-end rate is bounded by the CPU
// every process of the run needs, so this is what explains a rate.

import (
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"
)

// clockTick is the unit of /proc's CPU times (USER_HZ, 100 on Linux).
const clockTick = 10 * time.Millisecond

// procTimes reads utime, stime, cutime, cstime of /proc/<pid>/stat
// ("self" for this process); zeros when it cannot.
func procTimes(pid string) (self, children time.Duration) {
	b, err := os.ReadFile("/proc/" + pid + "/stat")
	if err != nil {
		return 0, 0
	}
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return 0, 0
	}
	f := strings.Fields(s[i+1:])
	// After the command: state(0) … utime(11) stime(12) cutime(13) cstime(14).
	if len(f) < 15 {
		return 0, 0
	}
	n := func(k int) time.Duration {
		v, _ := strconv.ParseInt(f[k], 10, 64)
		return time.Duration(v) * clockTick
	}
	return n(11) + n(12), n(13) + n(14)
}

// cpuMark is the CPU used so far by the emulator and by this process (the
// local broker: agent, run log shipper, dispatcher, SNS loop; and the bench)
// and its reaped children.
type cpuMark struct{ moto, self, children time.Duration }

func (b *bencher) cpuNow() cpuMark {
	var m cpuMark
	if b.srv != nil {
		m.moto, _ = procTimes(strconv.Itoa(b.srv.PID()))
	}
	m.self, m.children = procTimes("self")
	return m
}

// cpuUse is the CPU of a run between two marks, in all and per process;
// trigger is deploy-trigger's own (a child too: the rest of the children's
// CPU is the runner's and its job's, reaped by the agent by the time the
// second mark is taken).
func cpuUse(a, b cpuMark, trigger time.Duration) (time.Duration, string) {
	moto, self := b.moto-a.moto, b.self-a.self
	runner := b.children - a.children - trigger
	return moto + self + runner + trigger, fmt.Sprintf("CPU s: moto %.2f, runner+job %.2f, deploy-trigger %.2f, local broker+bench %.2f",
		moto.Seconds(), runner.Seconds(), trigger.Seconds(), self.Seconds())
}
