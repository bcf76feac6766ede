// Package deploylog makes realistic deploy-log lines for the benchmark and
// the runner's redaction measurements: one generator, so both measure the
// same text.
package deploylog

import (
	"fmt"
	"math/rand/v2"
	"time"
)

// deployLogBase is the time of line 0 of the deploy-log job.
var deployLogBase = time.Date(2026, 11, 22, 10, 0, 0, 0, time.UTC)

// Line is line i (without its newline) of a realistic deploy log:
// what terraform, kubectl, docker build and an application's own logs print,
// with increasing microsecond timestamps, random ids, hashes, counts and
// durations, some ANSI colour, 50 to 250 bytes. Unlike the numbered
// synthetic lines it is not repetitive, so it compresses the way real
// output does. The same i always gives the same line, so the receiver can
// check every line.
func Line(dst []byte, i int) []byte {
	r := rand.New(rand.NewPCG(uint64(i), 0x5eed))
	ts := deployLogBase.Add(time.Duration(i)*3*time.Millisecond + time.Duration(r.IntN(3000))*time.Microsecond).Format("2006-01-02T15:04:05.000000Z")
	uuid := func() string {
		return fmt.Sprintf("%08x-%04x-%04x-%04x-%012x", r.Uint32(), r.Uint32()&0xffff, r.Uint32()&0xffff, r.Uint32()&0xffff, r.Uint64()&0xffffffffffff)
	}
	var s string
	switch r.IntN(10) {
	case 0:
		s = fmt.Sprintf("aws_ecs_service.web[%d]: Still modifying... [id=arn:aws:ecs:eu-west-1:123456789012:service/prod/web-%08x, %dm%02ds elapsed]",
			r.IntN(4), r.Uint32(), r.IntN(10), r.IntN(60))
	case 1:
		s = fmt.Sprintf("deployment.apps/api-%s configured", []string{"gateway", "orders", "billing", "search", "auth"}[r.IntN(5)])
	case 2:
		s = fmt.Sprintf("pod/api-%x-%05x condition met (Ready %d/%d, restarts %d)", r.Uint32(), r.IntN(1<<20), r.IntN(4)+1, 4, r.IntN(3))
	case 3:
		s = fmt.Sprintf("\x1b[32m  + \x1b[0mresource \"aws_s3_object\" \"asset_%d\" { etag = \"%016x%016x\" key = \"static/js/%08x.chunk.js\" }",
			r.IntN(5000), r.Uint64(), r.Uint64(), r.Uint32())
	case 4:
		s = fmt.Sprintf("Step %d/%d : RUN npm ci --prefer-offline --no-audit (layer sha256:%016x%016x)", r.IntN(30)+1, 30, r.Uint64(), r.Uint64())
	case 5:
		s = fmt.Sprintf("[INFO] Uploaded s3://prod-assets-%06x/static/media/img-%08x.webp (%d bytes, %d ms)", r.IntN(1<<24), r.Uint32(), r.IntN(900000)+100, r.IntN(400)+3)
	case 6:
		s = fmt.Sprintf(`level=info msg="health check passed" target=i-%017x port=%d latency_ms=%.1f request_id=%s`,
			r.Uint64()>>4, 8000+r.IntN(100), r.Float64()*120, uuid())
	case 7:
		s = fmt.Sprintf("\x1b[33mWARN\x1b[0m retrying DescribeServices (attempt %d/%d, ThrottlingException, backoff %dms) request_id=%s",
			r.IntN(5)+1, 5, 100<<r.IntN(6), uuid())
	case 8:
		s = fmt.Sprintf("%s  %-28s %3d%% |%-40s| %6.1f MiB/s eta %ds", uuid()[:8], fmt.Sprintf("layer %012x", r.Uint64()&0xffffffffffff),
			r.IntN(101), "########################################"[:r.IntN(41)], r.Float64()*90, r.IntN(120))
	default:
		s = fmt.Sprintf(`{"ts":"%s","level":"%s","svc":"orders","trace":"%016x%016x","msg":"processed batch","n":%d,"dur_ms":%d}`,
			ts, []string{"debug", "info", "info", "warn"}[r.IntN(4)], r.Uint64(), r.Uint64(), r.IntN(500), r.IntN(2000))
	}
	dst = append(dst, ts...)
	dst = append(dst, ' ')
	return append(dst, s...)
}
