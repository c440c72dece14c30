package engine

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"syscall"
	"time"

	"github.com/moby/moby/api/types/container"
	v1 "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/berth-dev/berth/internal/content"
	"github.com/berth-dev/berth/internal/errdefs"
)

// Docker's health check defaults and limits.
const (
	defaultProbeInterval = 30 * time.Second
	defaultProbeTimeout  = 30 * time.Second
	defaultProbeRetries  = 3
	maxHealthLog         = 5
	maxProbeOutput       = 4096
)

// imageHealthcheck reads the HEALTHCHECK of an image's config: a docker
// field the OCI config type the image service returns does not carry.
func (e *Engine) imageHealthcheck(ctx context.Context, config v1.Descriptor) (*container.HealthConfig, error) {
	data, err := content.ReadBlob(ctx, e.images.Content(), config)
	if err != nil {
		return nil, err
	}
	var img struct {
		Config struct {
			Healthcheck *container.HealthConfig
		} `json:"config"`
	}
	if err := json.Unmarshal(data, &img); err != nil {
		return nil, err
	}
	return img.Config.Healthcheck, nil
}

// mergeHealthcheck is docker's rule: the container's check wins; one
// without a test (only --health-interval and such) takes the image's test
// and its unset fields.
func mergeHealthcheck(ctr, img *container.HealthConfig) *container.HealthConfig {
	if img == nil {
		return ctr
	}
	if ctr == nil {
		cp := *img
		return &cp
	}
	if len(ctr.Test) > 0 {
		return ctr
	}
	out := *ctr
	out.Test = img.Test
	if out.Interval == 0 {
		out.Interval = img.Interval
	}
	if out.Timeout == 0 {
		out.Timeout = img.Timeout
	}
	if out.StartPeriod == 0 {
		out.StartPeriod = img.StartPeriod
	}
	if out.StartInterval == 0 {
		out.StartInterval = img.StartInterval
	}
	if out.Retries == 0 {
		out.Retries = img.Retries
	}
	return &out
}

// probeArgs turns a HEALTHCHECK test into a command; nil means none.
func probeArgs(hc *container.HealthConfig) []string {
	if hc == nil || len(hc.Test) == 0 {
		return nil
	}
	switch hc.Test[0] {
	case "CMD":
		if len(hc.Test) > 1 {
			return hc.Test[1:]
		}
	case "CMD-SHELL":
		if len(hc.Test) > 1 {
			return []string{"/bin/sh", "-c", hc.Test[1]}
		}
	}
	return nil // "NONE" or malformed
}

// monitorHealth probes container id until it exits (exited closes), the
// way docker does: every Interval (StartInterval during StartPeriod) a
// probe runs as an exec; Retries failures in a row past the start period
// make it unhealthy, one success healthy. Status changes are events.
func (e *Engine) monitorHealth(id string, hc container.HealthConfig, args []string, startedAt time.Time, exited <-chan struct{}) {
	interval, timeout, retries := hc.Interval, hc.Timeout, hc.Retries
	if interval <= 0 {
		interval = defaultProbeInterval
	}
	if timeout <= 0 {
		timeout = defaultProbeTimeout
	}
	if retries <= 0 {
		retries = defaultProbeRetries
	}
	for {
		wait := interval
		inStart := time.Since(startedAt) < hc.StartPeriod
		if inStart && hc.StartInterval > 0 {
			wait = hc.StartInterval
		}
		select {
		case <-exited:
			return
		case <-time.After(wait):
		}
		res := e.probe(id, args, timeout)
		if !e.recordProbe(id, res, retries, time.Since(startedAt) < hc.StartPeriod, exited) {
			return
		}
	}
}

// limitedBuffer keeps the first maxProbeOutput bytes of a probe's output.
type limitedBuffer struct{ bytes.Buffer }

func (b *limitedBuffer) Write(p []byte) (int, error) {
	if room := maxProbeOutput - b.Len(); room > 0 {
		b.Buffer.Write(p[:min(len(p), room)])
	}
	return len(p), nil
}

func (e *Engine) probe(id string, args []string, timeout time.Duration) *container.HealthcheckResult {
	res := &container.HealthcheckResult{Start: time.Now()}
	ctx := context.Background()
	execID, err := e.ExecCreate(ctx, id, container.ExecCreateRequest{Cmd: args, AttachStdout: true, AttachStderr: true})
	if err != nil {
		res.End, res.ExitCode, res.Output = time.Now(), -1, err.Error()
		return res
	}
	var out limitedBuffer
	done := make(chan error, 1)
	go func() { done <- e.ExecStart(ctx, execID, ExecStartOptions{Stdout: &out, Stderr: &out}) }()
	select {
	case err = <-done:
	case <-time.After(timeout):
		res.End, res.ExitCode = time.Now(), -1
		res.Output = fmt.Sprintf("Health check exceeded timeout (%v)", timeout)
		// The probe is killed, as docker's is: a hung probe every interval
		// would pile up processes in the container.
		if sup, err := e.supervisor(ctx); err == nil {
			if err := sup.KillExec(ctx, id, execID, syscall.SIGKILL); err != nil && !errdefs.IsNotFound(err) {
				e.log.Warn("kill timed-out health probe", "id", id, "err", err)
			}
		}
		go func() { <-done; e.forgetExec(execID) }()
		return res
	}
	res.End = time.Now()
	if err != nil {
		res.ExitCode, res.Output = -1, err.Error()
		return res
	}
	x, err := e.ExecInspect(execID)
	if err != nil || x.ExitCode == nil {
		res.ExitCode = -1
	} else {
		res.ExitCode = *x.ExitCode
	}
	res.Output = out.String()
	e.forgetExec(execID) // probes are not kept, as in docker
	return res
}

// recordProbe updates the container's health; false when it no longer
// runs. Health is replaced, never changed in place: snapshots share it.
func (e *Engine) recordProbe(id string, res *container.HealthcheckResult, retries int, inStart bool, exited <-chan struct{}) bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	c, ok := e.byID[id]
	if !ok || isClosed(exited) || c.State.Status != StatusRunning {
		return false
	}
	h := container.Health{Status: container.Starting}
	if old := c.State.Health; old != nil {
		h = *old
	}
	h.Log = append(append([]*container.HealthcheckResult(nil), h.Log...), res)
	if len(h.Log) > maxHealthLog {
		h.Log = h.Log[len(h.Log)-maxHealthLog:]
	}
	prev := h.Status
	switch {
	case res.ExitCode == 0:
		h.Status, h.FailingStreak = container.Healthy, 0
	case inStart:
		// failures in the start period do not count
	default:
		h.FailingStreak++
		if h.FailingStreak >= retries {
			h.Status = container.Unhealthy
		}
	}
	c.State.Health = &h
	_ = e.save(c)
	if h.Status != prev {
		e.emitContainer(c, "health_status: "+string(h.Status), nil)
	}
	return true
}
