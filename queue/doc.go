// Package queue moves retain's work through Asynq on Redis: the task types and
// their payloads, the worker that applies events and sends due emails, and the
// scheduler that hands due customers to the workers and runs the time rules.
//
// Due emails do not wait as one scheduled Asynq task each. The store keeps a due
// index (one sorted-set entry per customer: its next send time); the scheduler
// claims the due customers with a lease and enqueues them in batches as send:due
// tasks; the worker re-checks each step at send time, sends it, and writes the
// customer's next due time back, which ends the lease. An event task is applied
// and, when it makes something due at once, sent in the same handler, without
// waiting for the scheduler.
//
// Queue delivery is at-least-once. Sending is made idempotent by the ledger: one
// Redis key per customer, campaign, enrollment and step, claimed before SMTP and
// marked sent after. The window that remains is documented on Worker.
//
// Payloads hold IDs, the event name, time and data; never addresses or bodies.
package queue
