// Command counting-runner is the runner with an in-process counting sink
// whose SendMessageBatch takes RTT: counting-runner RTT JOB-ARGV…. It prints
// its peak RSS and counts as one JSON line; the bench builds and runs it for
// runner_peak_rss_mib (see bench/counting).
package main

import (
	"fmt"
	"os"
	"time"

	"github.com/deploy-broker/deploy-broker/bench/counting"
)

func main() {
	if len(os.Args) < 3 {
		fmt.Fprintln(os.Stderr, "usage: counting-runner RTT JOB-ARGV…")
		os.Exit(2)
	}
	rtt, err := time.ParseDuration(os.Args[1])
	if err != nil {
		fmt.Fprintln(os.Stderr, "counting-runner:", err)
		os.Exit(2)
	}
	os.Exit(counting.Run(os.Args[2:], rtt))
}
