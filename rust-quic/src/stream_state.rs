//! The two halves of a stream's life as state machines: what the peer sends us
//! (`RecvState`) and what we send (`SendState`). HTTP/3 request streams walk
//! every state (RFC 9114 4.1: head, body, trailers, end); raw QUIC and
//! WebTransport streams carry bytes only and start in `Body`. A stream is done
//! when both halves are over (`is_over`). The transitions are methods here, so
//! every rule is tested without a connection (unit tests below).

/// What the peer sends us.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RecvState {
    /// HTTP/3: waiting for the head (a client also reads 1xx heads here).
    Head,
    /// The head arrived (or the stream carries bytes only): DATA, trailers or the end may follow.
    Body,
    /// Trailers arrived: only the end may follow.
    Trailers,
    /// The peer's FIN was delivered: everything was received.
    Finished,
    /// Nothing more is read: we stopped reading (STOP_SENDING, a refused
    /// request, a stream error), the peer reset, or there is no receive half
    /// (our unidirectional stream).
    Stopped,
}

/// What a complete header block is, given where the message is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HeaderBlock {
    Head,
    Trailers,
    /// HEADERS after trailers: a connection error (H3_FRAME_UNEXPECTED).
    Unexpected,
}

impl RecvState {
    pub fn header_block(self) -> HeaderBlock {
        match self {
            RecvState::Head => HeaderBlock::Head,
            RecvState::Body => HeaderBlock::Trailers,
            _ => HeaderBlock::Unexpected,
        }
    }

    /// DATA is allowed only between the head and trailers (RFC 9114 4.1).
    pub fn accepts_data(self) -> bool {
        self == RecvState::Body
    }

    pub fn awaits_head(self) -> bool {
        self == RecvState::Head
    }

    pub fn head_received(&mut self) {
        if *self == RecvState::Head {
            *self = RecvState::Body;
        }
    }

    pub fn trailers_received(&mut self) {
        if *self == RecvState::Body {
            *self = RecvState::Trailers;
        }
    }

    /// The peer's FIN, delivered to the application.
    pub fn finish(&mut self) {
        if !self.is_over() {
            *self = RecvState::Finished;
        }
    }

    /// We read no more (a FIN already delivered stays delivered).
    pub fn stop(&mut self) {
        if *self != RecvState::Finished {
            *self = RecvState::Stopped;
        }
    }

    pub fn is_over(self) -> bool {
        matches!(self, RecvState::Finished | RecvState::Stopped)
    }

    pub fn fin_received(self) -> bool {
        self == RecvState::Finished
    }
}

/// What we send.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SendState {
    /// HTTP/3: no final head yet (1xx heads may have gone).
    Head,
    /// The head is out (or the stream carries bytes only): body bytes and trailers may follow.
    Body,
    /// The end was asked for: queued bytes go to QUIC, then FIN.
    Finishing,
    /// FIN handed to QUIC (or there is no send half: a peer's unidirectional stream).
    Finished,
    /// RESET_STREAM sent (ours, or quiche's answer to the peer's STOP_SENDING).
    Reset,
}

impl SendState {
    /// A final head was queued; with `end` nothing follows it.
    pub fn head_sent(&mut self, end: bool) {
        if *self == SendState::Head {
            *self = if end { SendState::Finishing } else { SendState::Body };
        }
    }

    /// Trailers (or a whole response) close the body: FIN follows what is queued.
    pub fn request_fin(&mut self) {
        if matches!(self, SendState::Head | SendState::Body) {
            *self = SendState::Finishing;
        }
    }

    /// QUIC took the FIN with the last queued bytes.
    pub fn fin_sent(&mut self) {
        if *self == SendState::Finishing {
            *self = SendState::Finished;
        }
    }

    /// A FIN already sent stays sent: a reset then has nothing to cut.
    pub fn reset(&mut self) {
        if *self != SendState::Finished {
            *self = SendState::Reset;
        }
    }

    /// A header block may go: a head (1xx or final) or, after it, trailers.
    pub fn accepts_headers(self) -> bool {
        matches!(self, SendState::Head | SendState::Body)
    }

    pub fn accepts_body(self) -> bool {
        self == SendState::Body
    }

    /// The final head is out (a later block is trailers).
    pub fn head_is_out(self) -> bool {
        !matches!(self, SendState::Head)
    }

    pub fn fin_pending(self) -> bool {
        self == SendState::Finishing
    }

    /// FIN asked for or sent, or reset: nothing new may be written.
    pub fn closed_for_writes(self) -> bool {
        !matches!(self, SendState::Head | SendState::Body)
    }

    pub fn is_over(self) -> bool {
        matches!(self, SendState::Finished | SendState::Reset)
    }

    pub fn fin_was_sent(self) -> bool {
        self == SendState::Finished
    }
}

/// Both halves are over: the stream closes.
pub fn is_over(recv: RecvState, send: SendState) -> bool {
    recv.is_over() && send.is_over()
}

#[cfg(test)]
mod tests {
    use super::*;

    const RECV: [RecvState; 5] =
        [RecvState::Head, RecvState::Body, RecvState::Trailers, RecvState::Finished, RecvState::Stopped];
    const SEND: [SendState; 5] =
        [SendState::Head, SendState::Body, SendState::Finishing, SendState::Finished, SendState::Reset];

    fn after(mut s: RecvState, f: fn(&mut RecvState)) -> RecvState {
        f(&mut s);
        s
    }

    fn after_send(mut s: SendState, f: impl Fn(&mut SendState)) -> SendState {
        f(&mut s);
        s
    }

    #[test]
    fn a_request_is_head_then_body_then_trailers_then_end() {
        let mut r = RecvState::Head;
        assert_eq!(r.header_block(), HeaderBlock::Head);
        assert!(!r.accepts_data(), "DATA before the head is unexpected");
        r.head_received();
        assert_eq!(r, RecvState::Body);
        assert!(r.accepts_data());
        assert_eq!(r.header_block(), HeaderBlock::Trailers);
        r.trailers_received();
        assert_eq!(r, RecvState::Trailers);
        assert!(!r.accepts_data(), "DATA after trailers is unexpected");
        assert_eq!(r.header_block(), HeaderBlock::Unexpected);
        r.finish();
        assert!(r.fin_received() && r.is_over());
    }

    #[test]
    fn every_receive_transition() {
        use RecvState::*;
        // (state, head_received, trailers_received, finish, stop)
        let table = [
            (Head, Body, Head, Finished, Stopped),
            (Body, Body, Trailers, Finished, Stopped),
            (Trailers, Trailers, Trailers, Finished, Stopped),
            (Finished, Finished, Finished, Finished, Finished),
            (Stopped, Stopped, Stopped, Stopped, Stopped),
        ];
        for (s, head, trailers, fin, stop) in table {
            assert_eq!(after(s, RecvState::head_received), head, "{s:?} head");
            assert_eq!(after(s, RecvState::trailers_received), trailers, "{s:?} trailers");
            assert_eq!(after(s, RecvState::finish), fin, "{s:?} fin");
            assert_eq!(after(s, RecvState::stop), stop, "{s:?} stop");
        }
        assert_eq!(RECV.iter().filter(|s| s.is_over()).count(), 2);
        assert_eq!(RECV.iter().filter(|s| s.awaits_head()).collect::<Vec<_>>(), [&Head]);
    }

    #[test]
    fn a_response_is_head_then_body_then_fin() {
        let mut s = SendState::Head;
        assert!(s.accepts_headers() && !s.accepts_body() && !s.head_is_out());
        s.head_sent(false);
        assert_eq!(s, SendState::Body);
        assert!(s.accepts_body() && s.accepts_headers() && s.head_is_out(), "body, or trailers");
        s.request_fin();
        assert!(s.fin_pending() && s.closed_for_writes() && !s.is_over());
        s.fin_sent();
        assert!(s.fin_was_sent() && s.is_over());
    }

    #[test]
    fn every_send_transition() {
        use SendState::*;
        // (state, head_sent(false), head_sent(true), request_fin, fin_sent, reset)
        let table = [
            (Head, Body, Finishing, Finishing, Head, Reset),
            (Body, Body, Body, Finishing, Body, Reset),
            (Finishing, Finishing, Finishing, Finishing, Finished, Reset),
            (Finished, Finished, Finished, Finished, Finished, Finished),
            (Reset, Reset, Reset, Reset, Reset, Reset),
        ];
        for (s, head, head_end, fin, sent, reset) in table {
            assert_eq!(after_send(s, |x| x.head_sent(false)), head, "{s:?} head");
            assert_eq!(after_send(s, |x| x.head_sent(true)), head_end, "{s:?} head+end");
            assert_eq!(after_send(s, SendState::request_fin), fin, "{s:?} fin requested");
            assert_eq!(after_send(s, SendState::fin_sent), sent, "{s:?} fin sent");
            assert_eq!(after_send(s, SendState::reset), reset, "{s:?} reset");
        }
        assert_eq!(SEND.iter().filter(|s| s.accepts_body()).collect::<Vec<_>>(), [&Body]);
        assert_eq!(SEND.iter().filter(|s| s.is_over()).count(), 2);
    }

    #[test]
    fn a_stream_is_over_only_when_both_halves_are() {
        for r in RECV {
            for s in SEND {
                assert_eq!(is_over(r, s), r.is_over() && s.is_over(), "{r:?} {s:?}");
            }
        }
        assert!(is_over(RecvState::Stopped, SendState::Finished));
        assert!(!is_over(RecvState::Finished, SendState::Finishing), "FIN queued, not yet taken");
    }
}
