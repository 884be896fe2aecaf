package queue

import (
	"context"
	"sync"

	"github.com/redis/go-redis/v9"
)

// pipe runs the commands of concurrent callers in shared pipelines: a caller
// that finds no pipeline in flight sends its own at once; callers that arrive
// while one is in flight queue up and go together in the next, sent by the
// first of them. Nobody waits for a timer, so alone a caller costs one round
// trip as before, and under load (a worker's many sends at once) many fences
// and outcomes share one round trip, and one WAIT.
type pipe struct {
	rdb     redis.UniversalClient
	durable *Durability

	mu      sync.Mutex
	queue   []*pipeCall
	running bool // a caller is sending a pipeline, or about to
}

// pipes are the ledger's pipes: one on a single Redis or a Sentinel master; on
// Redis Cluster one per master, so that a pipeline, and the WAIT it ends with,
// goes to the master that holds its keys. (A Cluster client cannot send WAIT
// in a pipeline it splits over masters, and a WAIT on another connection than
// the writes' waits for nothing.)
type pipes struct {
	one     *pipe                // not a Cluster
	cluster *redis.ClusterClient // a Cluster
	durable *Durability

	mu     sync.Mutex
	byNode map[string]*pipe // a Cluster's pipes, by master address
}

func newPipes(rdb redis.UniversalClient, durable *Durability) *pipes {
	if cc, ok := rdb.(*redis.ClusterClient); ok {
		return &pipes{cluster: cc, durable: durable, byNode: map[string]*pipe{}}
	}
	return &pipes{one: &pipe{rdb: rdb, durable: durable}}
}

// forKey returns the pipe of the master that holds key now.
func (ps *pipes) forKey(ctx context.Context, key string) (*pipe, error) {
	if ps.cluster == nil {
		return ps.one, nil
	}
	node, err := ps.cluster.MasterForKey(ctx, key)
	if err != nil {
		return nil, err
	}
	addr := node.Options().Addr
	ps.mu.Lock()
	defer ps.mu.Unlock()
	pp := ps.byNode[addr]
	if pp == nil {
		pp = &pipe{rdb: node, durable: ps.durable}
		ps.byNode[addr] = pp
	}
	return pp, nil
}

// pipeCall is one caller's part of a pipeline.
type pipeCall struct {
	queue   func(p redis.Pipeliner) // adds the caller's commands
	durable bool                    // wants the writes durable (Durability)
	wait    *redis.Cmd              // the pipeline's WAIT, when any call wanted it
	done    chan struct{}           // closed when the pipeline ran
	lead    chan struct{}           // closed when this caller is to send the next
}

// do runs queue's commands in a pipeline, with a WAIT after them when durable
// is set and the ledger has Durability, and returns that WAIT (nil without
// one). The commands' replies and errors are in the commands queue made;
// a pipeline that failed as a whole fails each of them. ctx does not cut a
// pipeline short that carries other callers' commands.
func (pp *pipe) do(ctx context.Context, durable bool, queue func(p redis.Pipeliner)) *redis.Cmd {
	c := &pipeCall{queue: queue, durable: durable, done: make(chan struct{}), lead: make(chan struct{})}
	pp.mu.Lock()
	pp.queue = append(pp.queue, c)
	if pp.running {
		pp.mu.Unlock()
		select {
		case <-c.done:
			return c.wait
		case <-c.lead:
		}
		pp.mu.Lock()
	}
	pp.running = true
	calls := pp.queue
	pp.queue = nil
	pp.mu.Unlock()

	pp.exec(context.WithoutCancel(ctx), calls)

	pp.mu.Lock()
	if len(pp.queue) > 0 {
		close(pp.queue[0].lead) // it sends the next; running stays set
	} else {
		pp.running = false
	}
	pp.mu.Unlock()
	return c.wait
}

// exec sends one pipeline for calls and releases them.
func (pp *pipe) exec(ctx context.Context, calls []*pipeCall) {
	var wait *redis.Cmd
	// Errors are the commands' own: each caller reads its replies.
	_, _ = pp.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		durable := false
		for _, c := range calls {
			c.queue(p)
			durable = durable || c.durable
		}
		if durable && pp.durable.waits() {
			wait = pp.durable.waitCmd(ctx, p)
		}
		return nil
	})
	for _, c := range calls {
		if c.durable {
			c.wait = wait
		}
		close(c.done)
	}
}
