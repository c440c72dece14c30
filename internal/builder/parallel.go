package builder

import (
	"bytes"
	"context"
	"io"
	"sync"
)

// Stages run in parallel as soon as the stages they read from are done;
// their output still reads as docker's classic builder's, one stage after
// the other: the first unfinished stage writes through, later ones are
// held until every stage before them is done.

// orderedOutput serialises the output of concurrently built stages.
type orderedOutput struct {
	mu      sync.Mutex
	out     io.Writer
	bufs    []*bytes.Buffer
	done    []bool
	current int // the stage writing through
}

func newOrderedOutput(out io.Writer, n int) *orderedOutput {
	o := &orderedOutput{out: out, bufs: make([]*bytes.Buffer, n), done: make([]bool, n)}
	for i := range o.bufs {
		o.bufs[i] = &bytes.Buffer{}
	}
	return o
}

// stageWriter is stage i's output.
type stageWriter struct {
	o *orderedOutput
	i int
}

func (w stageWriter) Write(p []byte) (int, error) {
	w.o.mu.Lock()
	defer w.o.mu.Unlock()
	if w.i == w.o.current {
		return w.o.out.Write(p)
	}
	return w.o.bufs[w.i].Write(p)
}

// finish marks stage i done and lets the next stages' held output out.
func (o *orderedOutput) finish(i int) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.done[i] = true
	for o.current < len(o.done) && o.done[o.current] {
		o.current++
		if o.current < len(o.bufs) {
			o.flush(o.current)
		}
	}
}

// flushAll writes whatever is held, in stage order (a build that failed).
func (o *orderedOutput) flushAll() {
	o.mu.Lock()
	defer o.mu.Unlock()
	for i := o.current; i < len(o.bufs); i++ {
		o.flush(i)
	}
	o.current = len(o.bufs)
}

func (o *orderedOutput) flush(i int) {
	if o.bufs[i].Len() > 0 {
		_, _ = o.out.Write(o.bufs[i].Bytes())
		o.bufs[i].Reset()
	}
}

// runParallel builds the needed stages up to the target, each in its own
// goroutine once its dependencies are done. The first failure cancels the
// others and is returned.
func (bd *build) runParallel(ctx context.Context, stages []*stage) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	out := newOrderedOutput(bd.out, len(stages))
	pos := map[*stage]int{}
	for i, s := range stages {
		pos[s] = i
		s.out = stageWriter{o: out, i: i}
		s.finished = make(chan struct{})
	}
	var (
		wg       sync.WaitGroup
		errOnce  sync.Once
		firstErr error
	)
	for _, s := range stages {
		wg.Add(1)
		go func() {
			defer wg.Done()
			err := func() error {
				for _, dep := range s.deps {
					select {
					case <-dep.finished:
						if !dep.done {
							return context.Canceled // its failure is the one reported
						}
					case <-ctx.Done():
						return ctx.Err()
					}
				}
				return bd.runStage(ctx, s)
			}()
			close(s.finished)
			if err != nil {
				errOnce.Do(func() { firstErr = err })
				cancel()
				return
			}
			out.finish(pos[s])
		}()
	}
	wg.Wait()
	if firstErr != nil {
		out.flushAll()
	}
	return firstErr
}
