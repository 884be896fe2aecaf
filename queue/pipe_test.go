package queue

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/redis/go-redis/v9"
)

// pipelineCounter counts the pipelines a client sends.
type pipelineCounter struct{ n atomic.Int64 }

func (h *pipelineCounter) DialHook(next redis.DialHook) redis.DialHook { return next }
func (h *pipelineCounter) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return next
}
func (h *pipelineCounter) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		h.n.Add(1)
		return next(ctx, cmds)
	}
}

// TestPipeSharesRoundTripsAndKeepsEachReply: 200 concurrent callers each set
// and read back a key of their own through one pipe; each gets its own replies,
// and together they send fewer pipelines than calls.
func TestPipeSharesRoundTripsAndKeepsEachReply(t *testing.T) {
	b := setup(t)
	opt := *b.rdb.Options()
	rdb := redis.NewClient(&opt)
	defer rdb.Close()
	var count pipelineCounter
	rdb.AddHook(&count)
	pp := &pipe{rdb: rdb}

	const n = 200
	var wg sync.WaitGroup
	start := make(chan struct{})
	errs := make(chan error, n)
	for i := range n {
		wg.Go(func() {
			<-start
			key := fmt.Sprintf("%spipe:%d", b.prefix, i)
			var set *redis.StatusCmd
			var get *redis.StringCmd
			if wait := pp.do(b.ctx, true, func(p redis.Pipeliner) {
				set = p.Set(b.ctx, key, i, 0)
				get = p.Get(b.ctx, key)
			}); wait != nil {
				errs <- fmt.Errorf("call %d: a WAIT without Durability", i)
			}
			if err := set.Err(); err != nil {
				errs <- fmt.Errorf("call %d: SET: %v", i, err)
			}
			if v, err := get.Int(); err != nil || v != i {
				errs <- fmt.Errorf("call %d: GET = %d, %v; want its own %d", i, v, err, i)
			}
		})
	}
	close(start)
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if got := count.n.Load(); got >= n || got == 0 {
		t.Errorf("%d calls sent %d pipelines, want fewer than the calls", n, got)
	} else {
		t.Logf("%d concurrent calls sent %d pipelines", n, got)
	}
	// Alone, a call is one pipeline at once.
	before := count.n.Load()
	pp.do(b.ctx, false, func(p redis.Pipeliner) { p.Get(b.ctx, b.prefix+"pipe:0") })
	if got := count.n.Load() - before; got != 1 {
		t.Errorf("a lone call sent %d pipelines, want 1", got)
	}
	if pp.running || len(pp.queue) != 0 {
		t.Errorf("after the calls the pipe is running=%v with %d queued", pp.running, len(pp.queue))
	}
}
