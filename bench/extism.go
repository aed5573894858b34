package bench

import (
	"context"
	"errors"
)

func (r *runner) startExtism(ctx context.Context) (func(size int) error, func(), error) {
	return nil, nil, errors.New("Extism baseline not built yet")
}
