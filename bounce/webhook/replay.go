package webhook

import (
	"sync"
	"time"
)

// maxTokens bounds the tokens remembered. Past it the oldest are forgotten
// early, which only a flood of correctly signed requests can cause.
const maxTokens = 100_000

// tokenSet remembers the Mailgun tokens used in the last few minutes, in
// this process: a request whose token was seen is a replay.
type tokenSet struct {
	mu    sync.Mutex
	until map[string]time.Time
	queue []tokenEntry // in claim order
}

type tokenEntry struct {
	token string
	until time.Time
}

func newTokenSet() *tokenSet {
	return &tokenSet{until: map[string]time.Time{}}
}

// claim records token until the time given and reports whether it was new.
func (s *tokenSet) claim(token string, until, now time.Time) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	for len(s.queue) > 0 && (len(s.queue) >= maxTokens || !s.queue[0].until.After(now)) {
		s.forget(s.queue[0])
		s.queue = s.queue[1:]
	}
	if u, ok := s.until[token]; ok && u.After(now) {
		return false
	}
	s.until[token] = until
	s.queue = append(s.queue, tokenEntry{token, until})
	return true
}

// release forgets token, so that a delivery that was not applied can be
// made again with it.
func (s *tokenSet) release(token string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.until, token)
}

// forget drops e's token unless it was claimed again since.
func (s *tokenSet) forget(e tokenEntry) {
	if u, ok := s.until[e.token]; ok && u.Equal(e.until) {
		delete(s.until, e.token)
	}
}
