package engine

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/berth-dev/berth/internal/errdefs"
	"github.com/berth-dev/berth/internal/supervisor"
)

// LogEntry is one logged chunk of output.
type LogEntry = supervisor.LogEntry

// LogsOptions select log entries, as docker's logs endpoint does.
type LogsOptions struct {
	Stdout, Stderr bool
	Follow         bool
	// Tail is how many of the last entries to send first: < 0 all, 0 none
	// (attach: only what comes next).
	Tail         int
	Since, Until time.Time
	// Positioned, if set, is called once the reader knows where it
	// starts: an attach sends stdin only then, so that the container's
	// answer cannot come before the point the follower reads from.
	Positioned func()
}

// followPoll is how often a follower looks for new output; exits wake it
// at once. (inotify would save the polling: a next step.)
const followPoll = 50 * time.Millisecond

type logOpts struct {
	maxSize  int64
	maxFiles int
}

// logOptions reads docker's json-file options max-size ("10m") and max-file.
func logOptions(cfg map[string]string, defSize int64, defFiles int) (logOpts, error) {
	o := logOpts{maxSize: defSize, maxFiles: defFiles}
	if o.maxFiles < 1 {
		o.maxFiles = 1
	}
	if s, ok := cfg["max-size"]; ok && s != "-1" {
		n, err := parseSize(s)
		if err != nil || n <= 0 {
			return o, fmt.Errorf("invalid max-size %q: %w", s, errdefs.ErrInvalidArgument)
		}
		o.maxSize = n
	}
	if s, ok := cfg["max-file"]; ok {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 {
			return o, fmt.Errorf("invalid max-file %q: %w", s, errdefs.ErrInvalidArgument)
		}
		if o.maxSize <= 0 && n > 1 {
			return o, fmt.Errorf("max-file cannot be set without max-size: %w", errdefs.ErrInvalidArgument)
		}
		o.maxFiles = n
	}
	return o, nil
}

// parseSize reads docker's sizes: "100", "10k", "10m", "1g" (powers of 1024).
func parseSize(s string) (int64, error) {
	s = strings.ToLower(strings.TrimSpace(s))
	mult := int64(1)
	for suf, m := range map[string]int64{"k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "kb": 1 << 10, "mb": 1 << 20, "gb": 1 << 30, "b": 1} {
		if strings.HasSuffix(s, suf) && len(s) > len(suf) {
			if _, err := strconv.ParseFloat(s[:len(s)-len(suf)], 64); err == nil {
				s, mult = s[:len(s)-len(suf)], m
				break
			}
		}
	}
	f, err := strconv.ParseFloat(s, 64)
	if err != nil {
		return 0, err
	}
	return int64(f * float64(mult)), nil
}

// Logs calls fn for each selected entry, oldest first. With Follow it goes
// on with new output until the container exits or ctx ends.
func (e *Engine) Logs(ctx context.Context, ref string, o LogsOptions, fn func(LogEntry) error) error {
	e.mu.Lock()
	c, err := e.lookup(ref)
	if err != nil {
		e.mu.Unlock()
		return err
	}
	id, exited := c.ID, c.exited
	live := c.State.Status == StatusRunning || c.State.Status == StatusCreated
	maxFiles := e.opts.LogMaxFiles
	if lo, err := logOptions(c.HostConfig.LogConfig.Config, e.opts.LogMaxSize, maxFiles); err == nil {
		maxFiles = lo.maxFiles
	}
	e.mu.Unlock()
	path := e.LogPath(id)
	want := func(le LogEntry) bool {
		if (le.Stream == "stdout" && !o.Stdout) || (le.Stream == "stderr" && !o.Stderr) {
			return false
		}
		if !o.Since.IsZero() && le.Time.Before(o.Since) {
			return false
		}
		return o.Until.IsZero() || !le.Time.After(o.Until)
	}
	var offset int64
	var ino uint64
	if o.Tail != 0 {
		var backlog []LogEntry
		for i := maxFiles - 1; i >= 1; i-- {
			_, _, _ = readEntries(fmt.Sprintf("%s.%d", path, i), 0, func(le LogEntry) {
				if want(le) {
					backlog = append(backlog, le)
				}
			})
		}
		offset, ino, _ = readEntries(path, 0, func(le LogEntry) {
			if want(le) {
				backlog = append(backlog, le)
			}
		})
		if o.Tail > 0 && len(backlog) > o.Tail {
			backlog = backlog[len(backlog)-o.Tail:]
		}
		for _, le := range backlog {
			if err := fn(le); err != nil {
				return err
			}
		}
	} else if st, err := os.Stat(path); err == nil {
		offset, ino = st.Size(), inode(st)
	}
	if o.Positioned != nil {
		o.Positioned()
	}
	if !o.Follow || !live {
		return nil
	}
	return followLog(ctx, path, offset, ino, exited, func(le LogEntry) error {
		if !o.Until.IsZero() && le.Time.After(o.Until) {
			return io.EOF
		}
		if want(le) {
			return fn(le)
		}
		return nil
	})
}

func inode(fi os.FileInfo) uint64 {
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		return st.Ino
	}
	return 0
}

// readEntries decodes the whole entries of the file at path from offset and
// returns the offset after the last whole line and the file's inode.
func readEntries(path string, offset int64, fn func(LogEntry)) (int64, uint64, error) {
	f, err := os.Open(path)
	if err != nil {
		return offset, 0, err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return offset, 0, err
	}
	n, err := readFrom(f, offset, fn)
	return n, inode(st), err
}

func readFrom(f *os.File, offset int64, fn func(LogEntry)) (int64, error) {
	if _, err := f.Seek(offset, io.SeekStart); err != nil {
		return offset, err
	}
	r := bufio.NewReaderSize(f, 32<<10)
	for {
		line, err := r.ReadSlice('\n')
		if errors.Is(err, bufio.ErrBufferFull) {
			// Longer than any entry the supervisor writes; skip it whole.
			offset += int64(len(line))
			for errors.Is(err, bufio.ErrBufferFull) {
				line, err = r.ReadSlice('\n')
				offset += int64(len(line))
			}
			continue
		}
		if err != nil {
			return offset, nil // EOF, or a line still being written
		}
		offset += int64(len(line))
		var le LogEntry
		if json.Unmarshal(line, &le) == nil {
			fn(le)
		}
	}
}

// followLog sends entries as they are written from offset on, following a
// rotation to the new file, until exited is closed (then it drains the
// file) or ctx ends.
func followLog(ctx context.Context, path string, offset int64, ino uint64, exited <-chan struct{}, fn func(LogEntry) error) error {
	var f *os.File
	defer func() {
		if f != nil {
			f.Close()
		}
	}()
	var sendErr error
	send := func(le LogEntry) {
		if sendErr == nil {
			sendErr = fn(le)
		}
	}
	tick := time.NewTicker(followPoll)
	defer tick.Stop()
	done := false
	for {
		if f == nil {
			if nf, err := os.Open(path); err == nil {
				st, _ := nf.Stat()
				if st != nil && ino != 0 && inode(st) != ino {
					offset = 0 // rotated (or created) since we looked
				}
				if st != nil {
					ino = inode(st)
				}
				f = nf
			}
		}
		if f != nil {
			var err error
			offset, err = readFrom(f, offset, send)
			if err != nil {
				return err
			}
			if sendErr != nil {
				if sendErr == io.EOF {
					return nil
				}
				return sendErr
			}
			// Rotated: the path names a new file; finish this one first
			// (done above), then switch.
			if st, err := os.Stat(path); err == nil && inode(st) != ino {
				f.Close()
				f, offset, ino = nil, 0, 0
				continue
			}
		}
		if done {
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-exited:
			done = true // one last read: the supervisor drains before it reports
		case <-tick.C:
		}
	}
}
