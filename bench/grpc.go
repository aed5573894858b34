package bench

import (
	"context"
	"errors"
)

func (r *runner) startGRPC(ctx context.Context) (func(size int) error, func(), error) {
	return nil, nil, errors.New("gRPC baseline not built yet")
}
