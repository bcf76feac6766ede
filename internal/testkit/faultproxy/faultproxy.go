// Package faultproxy is a fault-injecting HTTP proxy for tests: it sits
// between deploy-broker's binaries and the moto server and, at configurable
// rates, answers with 500/503 or a throttling error, adds latency spikes,
// resets connections before forwarding, or forwards and then drops the
// response (the request took effect but the client never hears of it, which
// is what makes retries dangerous). Clients reach it through
// AWS_ENDPOINT_URL like any endpoint.
package faultproxy

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log"
	"math/rand"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Rates are the fraction (0–1) of matching requests that get each fault. At
// most one fault hits a request; the rates add up to the total fault rate.
type Rates struct {
	Error500     float64 // 500 InternalFailure, not forwarded
	Error503     float64 // 503 ServiceUnavailable, not forwarded
	Throttle     float64 // 400 ThrottlingException / Throttling, not forwarded
	Reset        float64 // connection closed without a response, not forwarded
	DropResponse float64 // forwarded, then the connection is closed: the request took effect
	Latency      float64 // forwarded after a delay of LatencySpike
}

// Total is the sum of the rates.
func (r Rates) Total() float64 {
	return r.Error500 + r.Error503 + r.Throttle + r.Reset + r.DropResponse + r.Latency
}

// Spread returns rates that share total evenly among every kind of fault.
func Spread(total float64) Rates {
	each := total / 6
	return Rates{Error500: each, Error503: each, Throttle: each, Reset: each, DropResponse: each, Latency: each}
}

// Options configure a Proxy.
type Options struct {
	Rates        Rates
	LatencySpike time.Duration // default 300ms
	Seed         int64
	// Match selects the requests faults may hit, by service and action
	// (e.g. "sqs", "SendMessageBatch"). nil matches every request.
	Match func(service, action string) bool
	// Plan, when set, decides each matched request's fault instead of the
	// rates: nth counts the matched requests of that service and action
	// from 1. Tests use it to hit exactly one call.
	Plan func(service, action string, nth int) Fault
}

// dynamoWrites are the DynamoDB actions that may carry a condition. moto
// 5.2.1 checks a ConditionExpression and then writes the item without a
// lock, so two concurrent conditional writes of one item can both succeed
// there; DynamoDB applies each conditional write atomically ("Condition
// expressions", DynamoDB developer guide). The proxy forwards these one at a
// time, so that compare-and-set behaves in tests as it does in AWS.
var dynamoWrites = map[string]bool{"PutItem": true, "UpdateItem": true, "DeleteItem": true,
	"TransactWriteItems": true, "BatchWriteItem": true}

// Fault is what the proxy does to one request.
type Fault int

// Faults.
const (
	None Fault = iota
	Error500
	Error503
	Throttle
	Reset
	DropResponse
	Latency
	// AccessDenied answers 400 AccessDenied(Exception), not forwarded: a
	// caller whose policy lacks the action (only by Plan: it is no
	// transient fault, so Rates has no share of it).
	AccessDenied
)

// Stats count what the proxy did.
type Stats struct {
	Requests, Matched, Error500, Error503, Throttle, Reset, DropResponse, Latency int64
}

// FaultRate is the share of matched requests that got a fault or a spike.
func (s Stats) FaultRate() float64 {
	if s.Matched == 0 {
		return 0
	}
	return float64(s.Faults()+s.Latency) / float64(s.Matched)
}

// Faults is the number of requests that got a fault other than latency.
func (s Stats) Faults() int64 {
	return s.Error500 + s.Error503 + s.Throttle + s.Reset + s.DropResponse
}

// Proxy is a running fault-injecting proxy.
type Proxy struct {
	URL string

	target *url.URL
	rp     *httputil.ReverseProxy
	srv    *http.Server
	ln     net.Listener
	o      Options

	mu sync.Mutex
	// dynamoMu serialises DynamoDB writes (see dynamoWrites).
	dynamoMu sync.Mutex
	rnd      *rand.Rand
	nth      map[string]int

	requests, matched, e500, e503, throttle, reset, drop, latency atomic.Int64
	enabled                                                       atomic.Bool
}

// Start listens on 127.0.0.1 and forwards to target (e.g. moto's URL).
func Start(target string, o Options) (*Proxy, error) {
	u, err := url.Parse(target)
	if err != nil {
		return nil, err
	}
	if o.LatencySpike == 0 {
		o.LatencySpike = 300 * time.Millisecond
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	p := &Proxy{URL: "http://" + ln.Addr().String(), target: u, ln: ln, o: o, rnd: rand.New(rand.NewSource(o.Seed)), nth: map[string]int{}}
	p.rp = httputil.NewSingleHostReverseProxy(u)
	p.rp.Transport = &http.Transport{MaxIdleConnsPerHost: 64, IdleConnTimeout: 30 * time.Second}
	p.rp.ErrorHandler = func(w http.ResponseWriter, r *http.Request, err error) {
		// A client that gave up (a long poll cancelled at the end of a
		// run, a test's broker shutting down) is no error worth a line:
		// they flooded the test output. Anything else is logged as the
		// default handler does.
		if !errors.Is(err, context.Canceled) {
			log.Printf("faultproxy: %s %s: %v", r.Method, r.URL.Path, err)
		}
		w.WriteHeader(http.StatusBadGateway)
	}
	p.enabled.Store(true)
	p.srv = &http.Server{Handler: p, ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = p.srv.Serve(ln) }()
	return p, nil
}

// SetEnabled turns fault injection on or off (requests are always forwarded).
func (p *Proxy) SetEnabled(on bool) { p.enabled.Store(on) }

// Close stops the proxy.
func (p *Proxy) Close() { _ = p.srv.Close() }

// Stats returns the counts so far.
func (p *Proxy) Stats() Stats {
	return Stats{Requests: p.requests.Load(), Matched: p.matched.Load(), Error500: p.e500.Load(), Error503: p.e503.Load(),
		Throttle: p.throttle.Load(), Reset: p.reset.Load(), DropResponse: p.drop.Load(), Latency: p.latency.Load()}
}

func (p *Proxy) pick(service, action string) Fault {
	if !p.enabled.Load() {
		return None
	}
	if p.o.Plan != nil {
		p.mu.Lock()
		key := service + "." + action
		p.nth[key]++
		n := p.nth[key]
		p.mu.Unlock()
		return p.o.Plan(service, action, n)
	}
	p.mu.Lock()
	x := p.rnd.Float64()
	p.mu.Unlock()
	r := p.o.Rates
	for _, c := range []struct {
		rate float64
		f    Fault
	}{{r.Error500, Error500}, {r.Error503, Error503}, {r.Throttle, Throttle}, {r.Reset, Reset}, {r.DropResponse, DropResponse}, {r.Latency, Latency}} {
		if x < c.rate {
			return c.f
		}
		x -= c.rate
	}
	return None
}

// ServeHTTP forwards one request, or injects a fault.
func (p *Proxy) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	p.requests.Add(1)
	body, err := io.ReadAll(r.Body)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadGateway)
		return
	}
	r.Body = io.NopCloser(bytes.NewReader(body))
	service, action, jsonProto := classify(r, body)
	if service == "dynamodb" && dynamoWrites[action] {
		p.dynamoMu.Lock()
		defer p.dynamoMu.Unlock()
	}
	f := None
	if p.o.Match == nil || p.o.Match(service, action) {
		p.matched.Add(1)
		f = p.pick(service, action)
	}
	switch f {
	case Error500:
		p.e500.Add(1)
		writeError(w, jsonProto, http.StatusInternalServerError, "InternalFailure", "injected internal failure")
	case Error503:
		p.e503.Add(1)
		writeError(w, jsonProto, http.StatusServiceUnavailable, "ServiceUnavailable", "injected service unavailable")
	case Throttle:
		p.throttle.Add(1)
		code := "Throttling"
		if jsonProto {
			code = "ThrottlingException"
		}
		writeError(w, jsonProto, http.StatusBadRequest, code, "Rate exceeded (injected)")
	case Reset:
		p.reset.Add(1)
		hangUp(w)
	case DropResponse:
		p.drop.Add(1)
		rec := &discard{header: http.Header{}}
		p.rp.ServeHTTP(rec, r)
		hangUp(w)
	case Latency:
		p.latency.Add(1)
		time.Sleep(p.o.LatencySpike)
		p.rp.ServeHTTP(w, r)
	case AccessDenied:
		code := "AccessDenied"
		if jsonProto {
			code = "AccessDeniedException"
		}
		writeError(w, jsonProto, http.StatusBadRequest, code, "User is not authorized to perform this action (injected)")
	default:
		p.rp.ServeHTTP(w, r)
	}
}

// classify names the service and action of an AWS request: JSON-protocol
// services put them in X-Amz-Target, query-protocol ones in the form body.
func classify(r *http.Request, body []byte) (service, action string, jsonProto bool) {
	if t := r.Header.Get("X-Amz-Target"); t != "" {
		prefix, act, _ := strings.Cut(t, ".")
		switch {
		case strings.HasPrefix(prefix, "AmazonSQS"):
			service = "sqs"
		case strings.HasPrefix(prefix, "AmazonEC2ContainerService"):
			service = "ecs"
		case strings.HasPrefix(prefix, "DynamoDB"):
			service = "dynamodb"
		default:
			service = strings.ToLower(prefix)
		}
		return service, act, true
	}
	if v, err := url.ParseQuery(string(body)); err == nil && v.Get("Action") != "" {
		action = v.Get("Action")
	}
	// Query protocol: the credential scope in the signature names the service.
	if auth := r.Header.Get("Authorization"); auth != "" {
		if i := strings.Index(auth, "Credential="); i >= 0 {
			parts := strings.Split(auth[i:], "/")
			if len(parts) > 3 {
				service = parts[3]
			}
		}
	}
	return service, action, false
}

func writeError(w http.ResponseWriter, jsonProto bool, status int, code, msg string) {
	if jsonProto {
		w.Header().Set("Content-Type", "application/x-amz-json-1.0")
		w.Header().Set("X-Amzn-Query-Error", code+";Sender")
		w.WriteHeader(status)
		fmt.Fprintf(w, `{"__type":"com.amazonaws.sqs#%s","message":%q}`, code, msg)
		return
	}
	w.Header().Set("Content-Type", "text/xml")
	w.WriteHeader(status)
	fmt.Fprintf(w, `<ErrorResponse><Error><Type>Sender</Type><Code>%s</Code><Message>%s</Message></Error><RequestId>injected</RequestId></ErrorResponse>`, code, msg)
}

// hangUp closes the client connection without a response.
func hangUp(w http.ResponseWriter) {
	hj, ok := w.(http.Hijacker)
	if !ok {
		panic(http.ErrAbortHandler)
	}
	conn, _, err := hj.Hijack()
	if err != nil {
		panic(http.ErrAbortHandler)
	}
	if tc, ok := conn.(*net.TCPConn); ok {
		_ = tc.SetLinger(0) // RST, not FIN
	}
	_ = conn.Close()
}

type discard struct{ header http.Header }

func (d *discard) Header() http.Header         { return d.header }
func (d *discard) Write(b []byte) (int, error) { return len(b), nil }
func (d *discard) WriteHeader(int)             {}
