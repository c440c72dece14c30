package content

import (
	"context"
	"sync"
)

// keyedMutex hands out one exclusive lock per key. Entries exist only while
// someone holds or waits for them, so the map stays as small as the number of
// ingests in flight.
type keyedMutex struct {
	mu    sync.Mutex
	locks map[string]*keyLock
}

type keyLock struct {
	ch   chan struct{} // holds one token while locked
	refs int           // holders plus waiters
}

func newKeyedMutex() *keyedMutex {
	return &keyedMutex{locks: make(map[string]*keyLock)}
}

// lock waits for key until ctx is done and returns the function that unlocks
// it; calling that function more than once is harmless.
func (k *keyedMutex) lock(ctx context.Context, key string) (func(), error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	l := k.acquireEntry(key)
	select {
	case l.ch <- struct{}{}:
		return k.unlocker(key, l), nil
	default:
	}
	select {
	case l.ch <- struct{}{}:
		return k.unlocker(key, l), nil
	case <-ctx.Done():
		k.releaseEntry(key, l)
		return nil, ctx.Err()
	}
}

// tryLock takes key only if nobody holds it.
func (k *keyedMutex) tryLock(key string) (func(), bool) {
	l := k.acquireEntry(key)
	select {
	case l.ch <- struct{}{}:
		return k.unlocker(key, l), true
	default:
		k.releaseEntry(key, l)
		return nil, false
	}
}

// held reports whether someone holds key right now.
func (k *keyedMutex) held(key string) bool {
	k.mu.Lock()
	defer k.mu.Unlock()
	l, ok := k.locks[key]
	return ok && len(l.ch) > 0
}

func (k *keyedMutex) acquireEntry(key string) *keyLock {
	k.mu.Lock()
	defer k.mu.Unlock()
	l, ok := k.locks[key]
	if !ok {
		l = &keyLock{ch: make(chan struct{}, 1)}
		k.locks[key] = l
	}
	l.refs++
	return l
}

func (k *keyedMutex) releaseEntry(key string, l *keyLock) {
	k.mu.Lock()
	defer k.mu.Unlock()
	l.refs--
	if l.refs == 0 {
		delete(k.locks, key)
	}
}

func (k *keyedMutex) unlocker(key string, l *keyLock) func() {
	var once sync.Once
	return func() {
		once.Do(func() {
			<-l.ch
			k.releaseEntry(key, l)
		})
	}
}
