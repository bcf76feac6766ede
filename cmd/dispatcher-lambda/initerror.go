package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"
)

// reportInitError tells the Lambda Runtime API that the function cannot
// start, as a custom runtime must (aws-lambda-go has no helper for it): POST
// http://$AWS_LAMBDA_RUNTIME_API/2018-06-01/runtime/init/error with the
// Lambda-Runtime-Function-Error-Type header and a JSON body
// {"errorMessage","errorType"}
// (https://docs.aws.amazon.com/lambda/latest/dg/runtimes-api.html#runtimes-api-initerror).
// Lambda then fails the invoke with that error (Runtime.InitError, the
// message in the caller's answer and the log) instead of an empty 502 after
// the process exits. Without AWS_LAMBDA_RUNTIME_API (not under Lambda)
// there is nothing to report to.
func reportInitError(ctx context.Context, runtimeAPI, errorType string, cause error) error {
	if runtimeAPI == "" {
		return nil
	}
	msg := cause.Error()
	if len(msg) > maxInitErrorMessage {
		msg = strings.ToValidUTF8(msg[:maxInitErrorMessage], "") + "…"
	}
	body, err := json.Marshal(struct {
		Message string `json:"errorMessage"`
		Type    string `json:"errorType"`
	}{msg, errorType})
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, initErrorTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, "http://"+runtimeAPI+"/2018-06-01/runtime/init/error", bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Lambda-Runtime-Function-Error-Type", errorType)
	// The Runtime API is link-local: never through a proxy.
	client := &http.Client{Transport: &http.Transport{Proxy: nil}}
	resp, err := client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	if resp.StatusCode != http.StatusAccepted {
		return fmt.Errorf("the Runtime API answered HTTP %d", resp.StatusCode)
	}
	return nil
}

const (
	// maxInitErrorMessage bounds the reported message.
	maxInitErrorMessage = 4 << 10
	// initErrorTimeout bounds the report: the process exits regardless.
	initErrorTimeout = 5 * time.Second
)

// Error types reported at start-up, in Lambda's <category.reason> form.
const (
	errTypeEnvironment = "Dispatcher.IncompleteEnvironment"
	errTypeStart       = "Dispatcher.StartFailed"
)
