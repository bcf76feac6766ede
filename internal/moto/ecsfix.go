package moto

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"strconv"

	awsmiddleware "github.com/aws/aws-sdk-go-v2/aws/middleware"
	"github.com/aws/smithy-go/middleware"
	smithyhttp "github.com/aws/smithy-go/transport/http"
)

// ecsFix works around a moto bug: moto returns a task container's cpu and
// memory as JSON numbers, where the ECS API (and so the SDK's strict
// deserializer) has strings. This deserialize middleware sits between the
// transport and the operation's deserializer and rewrites just those fields
// in the responses of the ECS calls that return tasks. Everything else passes
// untouched; in AWS none of this exists.
type ecsFix struct{}

var ecsTaskActions = map[string]bool{"RunTask": true, "DescribeTasks": true, "StopTask": true, "StartTask": true}

func (ecsFix) ID() string { return "deploy-broker/moto-ecs-fix" }

func (ecsFix) HandleDeserialize(ctx context.Context, in middleware.DeserializeInput, next middleware.DeserializeHandler) (middleware.DeserializeOutput, middleware.Metadata, error) {
	out, md, err := next.HandleDeserialize(ctx, in)
	if err != nil || awsmiddleware.GetServiceID(ctx) != "ECS" || !ecsTaskActions[awsmiddleware.GetOperationName(ctx)] {
		return out, md, err
	}
	resp, ok := out.RawResponse.(*smithyhttp.Response)
	if !ok || resp.StatusCode != http.StatusOK {
		return out, md, err
	}
	body, rerr := io.ReadAll(resp.Body)
	resp.Body.Close()
	if rerr != nil {
		return out, md, rerr
	}
	if fixed, ok := fixTaskContainers(body); ok {
		body = fixed
	}
	resp.Body = io.NopCloser(bytes.NewReader(body))
	resp.ContentLength = int64(len(body))
	resp.Header.Set("Content-Length", strconv.Itoa(len(body)))
	return out, md, err
}

// addECSFix installs ecsFix innermost in the deserialize step.
func addECSFix(stack *middleware.Stack) error {
	return stack.Deserialize.Add(ecsFix{}, middleware.After)
}

func fixTaskContainers(body []byte) ([]byte, bool) {
	var doc map[string]any
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.UseNumber()
	if dec.Decode(&doc) != nil {
		return nil, false
	}
	var tasks []any
	switch v := doc["tasks"].(type) {
	case []any:
		tasks = v
	}
	if t, ok := doc["task"].(map[string]any); ok {
		tasks = append(tasks, t)
	}
	changed := false
	for _, ti := range tasks {
		task, ok := ti.(map[string]any)
		if !ok {
			continue
		}
		containers, _ := task["containers"].([]any)
		for _, ci := range containers {
			c, ok := ci.(map[string]any)
			if !ok {
				continue
			}
			for _, k := range []string{"cpu", "memory", "memoryReservation"} {
				if n, ok := c[k].(json.Number); ok {
					c[k] = n.String()
					changed = true
				}
			}
		}
	}
	if !changed {
		return nil, false
	}
	out, err := json.Marshal(doc)
	return out, err == nil
}
