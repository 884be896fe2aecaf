package mailer

import "bytes"

// appendDotStuffed appends msg to dst in SMTP's dot encoding, ending with the final
// ".": byte for byte what net/textproto's DotWriter sends for Write(msg) then Close.
// A bare "\n" becomes "\r\n", a "." that starts a line is doubled, and the
// terminator completes the last line first when msg does not end with one (and is
// "\r\n.\r\n" for an empty msg).
//
// DotWriter does this a byte at a time through a bufio.Writer; here each line costs
// one bytes.IndexByte, and the runs between the few places that need a byte added
// are copied whole, usually the whole message at once.
func appendDotStuffed(dst, msg []byte) []byte {
	// DotWriter's states, and how they show here:
	//  - begin/beginLine: the next byte starts a line (a "." there is doubled);
	//  - cr: the last byte was a "\r" that DotWriter took as a possible line end;
	//    the next byte never starts a line, and a "\n" after it gets no "\r";
	//  - data: in the middle of a line; a "\n" here gets a "\r" before it.
	// Inside a line only a run of "\r" right before its "\n" matters: starting from
	// data, each "\r" toggles between cr and data (a "\r" in cr is plain data), so
	// an odd run ends in cr and the "\n" needs nothing, an even run ends in data.
	const (
		begin = iota
		beginLine
		cr
		data
	)
	state := begin
	run := 0 // start of msg not yet appended
	for i := 0; i < len(msg); {
		if msg[i] == '.' { // state is begin or beginLine here
			dst = append(dst, msg[run:i+1]...)
			run = i // the "." is appended again with the run that follows
		}
		nl := bytes.IndexByte(msg[i:], '\n')
		if nl < 0 {
			if trailingCRs(msg[i:])%2 == 1 {
				state = cr
			} else {
				state = data
			}
			break
		}
		nl += i
		if trailingCRs(msg[i:nl])%2 == 0 {
			dst = append(dst, msg[run:nl]...)
			dst = append(dst, '\r')
			run = nl
		}
		i = nl + 1
		state = beginLine
	}
	dst = append(dst, msg[run:]...)
	switch state {
	case begin, data:
		return append(dst, "\r\n.\r\n"...)
	case cr:
		return append(dst, "\n.\r\n"...)
	}
	return append(dst, ".\r\n"...)
}

// trailingCRs counts the "\r" bytes at the end of b.
func trailingCRs(b []byte) int {
	n := 0
	for n < len(b) && b[len(b)-1-n] == '\r' {
		n++
	}
	return n
}
