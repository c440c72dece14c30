package engine

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"os/exec"
	"strconv"
	"strings"

	"github.com/berth-dev/berth/internal/errdefs"
	"github.com/berth-dev/berth/internal/runtime/cgroup"
)

// running returns the ID of running container ref, or docker's conflict.
func (e *Engine) running(ref string) (Container, error) {
	c, err := e.Get(ref)
	if err != nil {
		return c, err
	}
	if c.State.Status != StatusRunning {
		return c, fmt.Errorf("Container %s is not running: %w", c.ID, errdefs.ErrConflict)
	}
	return c, nil
}

// Pause freezes container ref's processes (the cgroup freezer).
func (e *Engine) Pause(ctx context.Context, ref string) error {
	return e.setPaused(ctx, ref, true)
}

// Unpause thaws a paused container.
func (e *Engine) Unpause(ctx context.Context, ref string) error {
	return e.setPaused(ctx, ref, false)
}

func (e *Engine) setPaused(ctx context.Context, ref string, pause bool) error {
	c, err := e.running(ref)
	if err != nil {
		return err
	}
	switch {
	case pause && c.State.Paused:
		return fmt.Errorf("Container %s is already paused: %w", c.ID, errdefs.ErrConflict)
	case !pause && !c.State.Paused:
		return fmt.Errorf("Container %s is not paused: %w", c.ID, errdefs.ErrConflict)
	}
	sup, err := e.supervisor(ctx)
	if err != nil {
		return err
	}
	action := "pause"
	if pause {
		err = sup.Pause(ctx, c.ID)
	} else {
		err, action = sup.Resume(ctx, c.ID), "unpause"
	}
	if err != nil {
		return err
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	if cc, ok := e.byID[c.ID]; ok && cc.State.Status == StatusRunning {
		cc.State.Paused = pause
		_ = e.save(cc)
		e.emitContainer(cc, action, nil)
	}
	return nil
}

// Stats samples container ref's cgroup.
func (e *Engine) Stats(ctx context.Context, ref string) (*cgroup.Stats, Container, error) {
	c, err := e.running(ref)
	if err != nil {
		return nil, c, err
	}
	sup, err := e.supervisor(ctx)
	if err != nil {
		return nil, c, err
	}
	st, err := sup.Stats(ctx, c.ID)
	return st, c, err
}

// Top lists container ref's processes as docker does: the host's ps with
// psArgs (default -ef), keeping the rows whose PID is the container's.
func (e *Engine) Top(ctx context.Context, ref, psArgs string) (titles []string, rows [][]string, err error) {
	c, err := e.running(ref)
	if err != nil {
		return nil, nil, err
	}
	sup, err := e.supervisor(ctx)
	if err != nil {
		return nil, nil, err
	}
	pids, err := sup.Pids(ctx, c.ID)
	if err != nil {
		return nil, nil, err
	}
	if psArgs == "" {
		psArgs = "-ef"
	}
	out, err := exec.CommandContext(ctx, "ps", strings.Fields(psArgs)...).Output()
	if err != nil {
		return nil, nil, fmt.Errorf("Error running ps: %v: %w", err, errdefs.ErrInvalidArgument)
	}
	want := map[int]bool{}
	for _, p := range pids {
		want[p] = true
	}
	if titles, rows, err = filterPs(out, want); err == nil {
		e.emitContainer(&c, "top", nil) // docker logs a top event too
	}
	return titles, rows, err
}

// filterPs keeps ps's header and the rows of the wanted pids; the last
// column (the command) may hold spaces.
func filterPs(out []byte, want map[int]bool) ([]string, [][]string, error) {
	sc := bufio.NewScanner(bytes.NewReader(out))
	if !sc.Scan() {
		return nil, nil, fmt.Errorf("ps printed nothing: %w", errdefs.ErrInvalidArgument)
	}
	titles := strings.Fields(sc.Text())
	col := -1
	for i, t := range titles {
		if t == "PID" {
			col = i
		}
	}
	if col < 0 {
		return nil, nil, fmt.Errorf("Couldn't find PID field in ps output: %w", errdefs.ErrInvalidArgument)
	}
	rows := [][]string{}
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) <= col {
			continue
		}
		pid, err := strconv.Atoi(f[col])
		if err != nil || !want[pid] {
			continue
		}
		if len(f) > len(titles) {
			f = append(f[:len(titles)-1], strings.Join(f[len(titles)-1:], " "))
		}
		rows = append(rows, f)
	}
	return titles, rows, nil
}
