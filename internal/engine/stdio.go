package engine

import (
	"context"
	"fmt"
	"net"
	"time"

	"github.com/berth-dev/berth/internal/errdefs"
)

// AttachStdin connects to the stdin of container ref, which must have been
// created with OpenStdin. The docker CLI attaches before it starts the
// container, so a created container is waited for (until ctx ends): the
// supervisor holds its stdin from the moment the container runs.
func (e *Engine) AttachStdin(ctx context.Context, ref string) (*net.UnixConn, error) {
	for {
		c, err := e.Get(ref)
		if err != nil {
			return nil, err
		}
		if !c.Config.OpenStdin {
			return nil, fmt.Errorf("container %s was not created with stdin open: %w", c.ID, errdefs.ErrFailedPrecondition)
		}
		switch {
		case c.State.Status == StatusRunning && c.State.Pid != 0:
			sup, err := e.supervisor(ctx)
			if err != nil {
				return nil, err
			}
			return sup.AttachStdin(ctx, c.ID)
		case c.State.Status != StatusCreated && c.State.Status != StatusRunning:
			return nil, fmt.Errorf("container %s is not running: %w", c.ID, errdefs.ErrConflict)
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// Resize sets the terminal size of a running Tty container.
func (e *Engine) Resize(ctx context.Context, ref string, width, height int) error {
	c, err := e.Get(ref)
	if err != nil {
		return err
	}
	if c.State.Status != StatusRunning {
		return fmt.Errorf("Container %s is not running: %w", c.ID, errdefs.ErrConflict)
	}
	if !c.Config.Tty {
		return fmt.Errorf("container %s has no terminal: %w", c.ID, errdefs.ErrConflict)
	}
	sup, err := e.supervisor(ctx)
	if err != nil {
		return err
	}
	return sup.Resize(ctx, c.ID, width, height)
}
