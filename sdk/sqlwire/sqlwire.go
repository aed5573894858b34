// Package sqlwire is the wire format between the SDK's database/sql driver and the base's sql service: typed
// values that survive JSON (int64 beyond 2^53, bytes, times).
package sqlwire

import (
	"fmt"
	"time"
)

// Value is one SQL value.
type Value struct {
	Null  bool       `json:"n,omitempty"`
	Int   *int64     `json:"i,omitempty"`
	Float *float64   `json:"f,omitempty"`
	Bool  *bool      `json:"t,omitempty"`
	Str   *string    `json:"s,omitempty"`
	Bytes *[]byte    `json:"b,omitempty"`
	Time  *time.Time `json:"d,omitempty"`
}

// From encodes a Go value (one of database/sql/driver's Value types).
func From(v any) (Value, error) {
	switch v := v.(type) {
	case nil:
		return Value{Null: true}, nil
	case int64:
		return Value{Int: &v}, nil
	case float64:
		return Value{Float: &v}, nil
	case bool:
		return Value{Bool: &v}, nil
	case string:
		return Value{Str: &v}, nil
	case []byte:
		b := append([]byte{}, v...)
		return Value{Bytes: &b}, nil
	case time.Time:
		return Value{Time: &v}, nil
	}
	return Value{}, fmt.Errorf("sqlwire: unsupported value type %T", v)
}

// Go decodes the value.
func (v Value) Go() any {
	switch {
	case v.Int != nil:
		return *v.Int
	case v.Float != nil:
		return *v.Float
	case v.Bool != nil:
		return *v.Bool
	case v.Str != nil:
		return *v.Str
	case v.Bytes != nil:
		return *v.Bytes
	case v.Time != nil:
		return *v.Time
	}
	return nil
}

// Request is one call to the sql service.
type Request struct {
	Database string  `json:"database,omitempty"` // open: "" for the module's own database
	Conn     int64   `json:"conn,omitempty"`
	Tx       int64   `json:"tx,omitempty"`
	Query    string  `json:"query,omitempty"`
	Args     []Value `json:"args,omitempty"`
	ReadOnly bool    `json:"readOnly,omitempty"`
}

// Result answers exec.
type Result struct {
	LastInsertID int64 `json:"lastInsertId"`
	RowsAffected int64 `json:"rowsAffected"`
}

// Rows answers query: every row at once.
type Rows struct {
	Columns []string  `json:"columns"`
	Rows    [][]Value `json:"rows"`
}

// Handle answers open (a connection) and begin (a transaction).
type Handle struct {
	ID int64 `json:"id"`
}
