package builder

import (
	"fmt"
	"sync"
	"testing"

	"github.com/moby/buildkit/frontend/dockerfile/shell"
)

// TestExpandConcurrent: stages built in parallel expand words at once;
// each gets its own result (shell.Lex keeps per-call state, so a shared
// one mixes them up).
func TestExpandConcurrent(t *testing.T) {
	bd := &build{lex: shell.NewLex('\\')}
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			want := fmt.Sprintf("value-%d-of-a-longer-word", g)
			env := shell.EnvsFromSlice([]string{"V=" + want})
			for range 2000 {
				if got, err := bd.expand("${V}", env); err != nil || got != want {
					t.Errorf("expand: %q %v, want %q", got, err, want)
					return
				}
			}
		}()
	}
	wg.Wait()
}
