package engine

import (
	"context"
	"time"

	"github.com/moby/moby/api/types/container"

	"github.com/berth-dev/berth/internal/errdefs"
)

// Docker's restart back-off: the first restart waits 100 ms, each next one
// twice as long up to a minute; a run of 10 s or more resets it.
const (
	restartFirstDelay = 100 * time.Millisecond
	restartMaxDelay   = time.Minute
	restartResetAfter = 10 * time.Second
)

// shouldRestart applies c's restart policy to an exit with code. A
// container stopped by the user (stop, kill) is restarted only by
// "always", and only when the daemon starts (boot).
func shouldRestart(c *Container, code int, boot bool) bool {
	p := c.HostConfig.RestartPolicy
	if c.HostConfig.AutoRemove {
		return false
	}
	switch {
	case p.Name == container.RestartPolicyAlways:
		return !c.ManuallyStopped || boot
	case p.Name == container.RestartPolicyUnlessStopped:
		return !c.ManuallyStopped
	case p.Name == container.RestartPolicyOnFailure:
		return !c.ManuallyStopped && code != 0 && (p.MaximumRetryCount == 0 || c.RestartCount < p.MaximumRetryCount)
	}
	return false
}

// scheduleRestart arms c's restart after the back-off; the caller holds
// e.mu and c has just exited.
func (e *Engine) scheduleRestart(c *Container) {
	ran := c.State.FinishedAt.Sub(c.State.StartedAt)
	switch {
	case ran >= restartResetAfter || c.restartDelay == 0:
		c.restartDelay = restartFirstDelay
	default:
		c.restartDelay = min(c.restartDelay*2, restartMaxDelay)
	}
	c.State.Restarting = true
	// Counted when the restart is decided, as docker does: inspect shows
	// the coming run's count while the container waits in the back-off.
	c.RestartCount++
	_ = e.save(c)
	id := c.ID
	var t *time.Timer
	t = time.AfterFunc(c.restartDelay, func() { e.restart(id, t) })
	c.restartTimer = t
}

// cancelRestart stops a pending restart; the caller holds e.mu.
func cancelRestart(c *Container) {
	if c.restartTimer != nil {
		c.restartTimer.Stop()
		c.restartTimer = nil
	}
	c.State.Restarting = false
}

// restart runs when a back-off ends, unless the restart was cancelled
// (stop, start, remove) in between.
func (e *Engine) restart(id string, t *time.Timer) {
	e.mu.Lock()
	c, ok := e.byID[id]
	if !ok || c.restartTimer != t || c.State.Status != StatusExited {
		e.mu.Unlock()
		return
	}
	c.restartTimer = nil
	// State.Restarting stays set until the start replaces the state: a
	// start takes a while (network setup), and "exited" in between would
	// tell clients the policy gave up.
	e.mu.Unlock()
	if err := e.start(context.Background(), id, false); err != nil && !errdefs.IsNotFound(err) {
		e.log.Warn("restart", "id", id, "err", err)
		// A container that cannot start is tried again with more back-off,
		// as docker does, while its policy allows.
		e.mu.Lock()
		if c, ok := e.byID[id]; ok && c.State.Status == StatusExited {
			c.State.Restarting = false
			if shouldRestart(c, c.State.ExitCode, false) {
				c.State.FinishedAt = time.Now().UTC()
				e.scheduleRestart(c)
			} else {
				_ = e.save(c)
			}
		}
		e.mu.Unlock()
	}
}

// restartOnBoot starts, when the daemon starts, the stopped containers
// whose policy says so (docker's daemon start with restart policies).
func (e *Engine) restartOnBoot(ctx context.Context) {
	e.mu.Lock()
	var ids []string
	for id, c := range e.byID {
		if c.State.Status == StatusExited && !c.State.StartedAt.IsZero() && shouldRestart(c, c.State.ExitCode, true) {
			ids = append(ids, id)
			cancelRestart(c)
			c.ManuallyStopped = false // started again: its policy applies anew
		}
	}
	e.mu.Unlock()
	for _, id := range ids {
		if err := e.start(ctx, id, false); err != nil {
			e.log.Warn("restart at daemon start", "id", id, "err", err)
		}
	}
}
