// Package events is publish/subscribe between modules, through the base. A module publishes to a topic it
// was granted (capability events:TOPIC) and receives the topics its manifest lists under `subscribe:`, each
// with a handler registered here. Delivery is at least once: an event whose handler fails (or whose module
// is switching) is delivered again, so handlers deduplicate by Event.ID.
package events

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/kouple/kouple/sdk"
)

// Event is one delivered event.
type Event struct {
	ID        string          `json:"id"`
	Topic     string          `json:"topic"`
	Data      json.RawMessage `json:"data,omitempty"`
	Publisher string          `json:"publisher,omitempty"` // the publishing module
	Time      time.Time       `json:"time"`                // when it was published
	Attempt   int             `json:"attempt,omitempty"`   // failed deliveries before this one
}

// Decode decodes the event's data into v.
func (e Event) Decode(v any) error {
	if err := json.Unmarshal(e.Data, v); err != nil {
		return fmt.Errorf("event %s on %s: %w", e.ID, e.Topic, err)
	}
	return nil
}

// Publish publishes data (encoded as JSON) on topic, and returns the event's id once every subscriber's copy
// is stored by the base.
func Publish(ctx context.Context, topic string, data any) (string, error) {
	raw, err := json.Marshal(data)
	if err != nil {
		return "", fmt.Errorf("publish %s: %w", topic, err)
	}
	var out struct {
		ID string `json:"id"`
	}
	err = sdk.Call(ctx, "events", "publish", struct {
		Topic string          `json:"topic"`
		Data  json.RawMessage `json:"data"`
	}{topic, raw}, &out)
	return out.ID, err
}

// MethodPrefix is how the base calls a topic's handler: the exported method "kouple.event.TOPIC".
const MethodPrefix = "kouple.event."

// Handle registers fn for the events of topic (listed under `subscribe:` in kouple.yaml); an error makes
// the base deliver the event again later. Call it from init().
func Handle(topic string, fn func(context.Context, Event) error) {
	sdk.Export(MethodPrefix+topic, func(ctx context.Context, e Event) (struct{}, error) {
		return struct{}{}, fn(ctx, e)
	})
}
