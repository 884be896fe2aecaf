// Package queue moves retain's work through Asynq on Redis: the task types and
// their payloads, the worker that applies events and sends due emails, and the
// scheduler that hands due customers to the workers and runs the time rules.
//
// Due emails do not wait as one scheduled Asynq task each. The store keeps a due
// index (one sorted-set entry per customer: its next send time); the scheduler
// leases the due customers (store.Lease: a key per customer holding a random
// token) and enqueues them in batches as send:due tasks carrying the token; the
// worker renews the lease while it works, re-checks each step at send time,
// sends it, writes the customer's next due time back and releases the lease.
// An event task is applied and, when it makes something due at once, sent in
// the same handler, under a lease of its own, without waiting for the
// scheduler.
//
// Queue delivery is at-least-once. Sending is made idempotent by the ledger: one
// Redis key per customer, campaign, enrollment and step, claimed with a token
// before SMTP, checked and extended by a fence right before it, and marked with
// its outcome (lifecycle.Outcome) after. The window that remains is documented
// on Worker.
//
// An event that cannot be applied (its customer unknown, its payload unreadable,
// an error past the last retry) is kept in the store's failed-event list for an
// operator to replay (failed.go); a condition that fails while an event runs
// counts as false and is logged and counted (condition.go).
//
// Payloads hold IDs, the event name, time and data; never addresses or bodies.
package queue
