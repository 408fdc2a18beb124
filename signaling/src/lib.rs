//! SIP user agent (in progress).
