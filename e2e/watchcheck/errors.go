package watchcheck

import (
	"errors"
	"io"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

func isEOF(err error) bool { return errors.Is(err, io.EOF) }

func isCanceledStatus(err error) bool {
	return status.Code(err) == codes.Canceled
}
