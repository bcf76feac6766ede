package localbroker

import (
	"context"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"strings"
	"time"
)

// accountShim stands between deploy-trigger and the emulator in local mode.
//
// deploy-trigger signs as a session of a trusted role, usually in another
// account than the broker's (the CI account), and moto serves each request
// from the account its access key belongs to: the trigger would publish to,
// and look for run queues in, an empty account. AWS resolves a topic or a
// queue by its ARN or URL, whoever calls; the shim does the same for moto by
// naming the broker's account (moto's x-moto-account-id header) on every
// request but STS's, whose answer must stay the caller's own. Signatures are
// unaffected: the header is not signed. moto checks no signatures, so the
// shim verifies each request's itself (keys, sigcheck.go) before passing it
// on, and refuses a job's deployment session the run queues.
//
// The shim listens on 127.0.0.1 only, and every local client (deploy-trigger,
// the runner, dispatcher and agent, and AWS CLI users sourcing the env file)
// reaches it by its 127.0.0.1 URL. It answers only requests whose Host is
// that address, so that a web page cannot reach it through DNS rebinding
// (its host name would be the Host), and it never passes on an
// x-moto-account-id of the client's: STS answers for the caller's own
// account, and nobody else picks the account of a request. It refuses web
// pages' requests and sends no CORS headers (refuseBrowsers).
type accountShim struct {
	URL  string
	keys *keyring // the access keys it accepts (sigcheck.go)
	srv  *http.Server
	ln   net.Listener
}

func startAccountShim(target, account string, keys *keyring) (*accountShim, error) {
	u, err := url.Parse(target)
	if err != nil {
		return nil, err
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	rp := &httputil.ReverseProxy{Rewrite: func(r *httputil.ProxyRequest) {
		r.SetURL(u)
		r.Out.Host = u.Host
		r.Out.Header.Del("x-moto-account-id")
		if signedService(r.In.Header.Get("Authorization")) != "sts" {
			r.Out.Header.Set("x-moto-account-id", account)
		}
	}}
	rp.ErrorLog = log.New(io.Discard, "", 0)
	// A long poll the trigger gives up is no news: answer 502 quietly.
	// Any other failure upstream (a connection the emulator, or a fault
	// proxy, hung up) is passed on as it is: the client's connection is
	// closed without an answer, so its SDK retries as it would without
	// the shim.
	rp.ErrorHandler = func(w http.ResponseWriter, r *http.Request, _ error) {
		if r.Context().Err() != nil {
			w.WriteHeader(http.StatusBadGateway)
			return
		}
		panic(http.ErrAbortHandler)
	}
	host := ln.Addr().String() // 127.0.0.1:port
	checked := keys.guard(rp)
	var h http.Handler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Host != host {
			http.Error(w, "this endpoint answers http://"+host+" only", http.StatusMisdirectedRequest)
			return
		}
		checked.ServeHTTP(w, r)
	})
	h = refuseBrowsers(h)
	s := &accountShim{URL: "http://" + host, keys: keys, ln: ln,
		srv: &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second}}
	go func() { _ = s.srv.Serve(ln) }()
	return s, nil
}

// signedService is the service of a SigV4 Authorization header's credential
// scope ("…Credential=AKID/DATE/REGION/SERVICE/aws4_request…").
func signedService(auth string) string {
	_, rest, ok := strings.Cut(auth, "Credential=")
	if !ok {
		return ""
	}
	scope, _, _ := strings.Cut(rest, ",")
	parts := strings.Split(scope, "/")
	if len(parts) != 5 {
		return ""
	}
	return parts[3]
}

func (s *accountShim) Close() {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	_ = s.srv.Shutdown(ctx)
}
