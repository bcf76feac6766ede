package main

import (
	"bufio"
	"fmt"
	"github.com/deploy-broker/deploy-broker/internal/testkit/deploylog"
	"os"
	"strconv"
	"time"
)

// JobArg is the first argument that makes the bench binary the job:
// "bench job MODE ARGS…" with MODE and ARGS one of
//
//	lines N SIZE | paced N RATE | bytes TOTAL SIZE | deploylog N | deploylog-bytes TOTAL
//
// The catalogue (testdata/broker.yaml), the runner started directly and the
// counting runner all run it so.
const JobArg = "job"

// jobArgv is the argv of the bench job in the given mode.
func (b *bencher) jobArgv(job []string) []string {
	return append([]string{b.self, JobArg}, job...)
}

// Job writes the benchmark's job output. It returns the exit code.
func Job(mode string, args []string) int {
	num := func(i int) int64 {
		n, err := strconv.ParseInt(args[i], 10, 64)
		if err != nil {
			fmt.Fprintln(os.Stderr, "bench job:", err)
			os.Exit(2)
		}
		return n
	}
	w := bufio.NewWriterSize(os.Stdout, 64<<10)
	defer w.Flush()
	switch mode {
	case "lines", "bytes": // N lines of SIZE bytes (newline included), or TOTAL bytes of such lines
		n, size := num(0), num(1)
		if mode == "bytes" {
			n = n / size
		}
		line := make([]byte, size)
		for i := range line {
			line[i] = 'a' + byte(i%26)
		}
		line[size-1] = '\n'
		for i := int64(0); i < n; i++ {
			copy(line, fmt.Sprintf("%09d ", i))
			w.Write(line)
		}
	case "deploylog", "deploylog-bytes": // N lines of DeployLogLine, or lines up to TOTAL bytes
		n := num(0)
		var line []byte
		var written int64
		for i := 0; ; i++ {
			if mode == "deploylog" && int64(i) >= n {
				break
			}
			line = append(deploylog.Line(line[:0], i), '\n')
			if mode == "deploylog-bytes" && written+int64(len(line)) > n {
				break
			}
			w.Write(line)
			written += int64(len(line))
		}
	case "paced": // N lines at RATE per second, each stamped with its write time
		n, rate := num(0), num(1)
		tick := time.NewTicker(time.Second / time.Duration(rate))
		defer tick.Stop()
		for i := int64(0); i < n; i++ {
			<-tick.C
			fmt.Fprintf(os.Stdout, "lat %d line %d\n", time.Now().UnixNano(), i)
		}
	default:
		fmt.Fprintln(os.Stderr, "bench job: unknown mode", mode)
		return 2
	}
	return 0
}
