//! `guest-agent ADDR MESSAGE`: what a test uploads into a guest and runs there, as an agent
//! under test would be — it connects to ADDR (a server the test runs on the host, forwarded into
//! the guest), sends MESSAGE and a newline, and prints the line the server answers.

use std::io::{BufRead, BufReader, Write};
use std::net::TcpStream;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let [_, addr, message] = &args[..] else {
        eprintln!("usage: guest-agent ADDR MESSAGE");
        std::process::exit(2);
    };
    let mut conn = TcpStream::connect(addr).unwrap_or_else(|e| {
        eprintln!("guest-agent: connecting to {addr}: {e}");
        std::process::exit(1);
    });
    writeln!(conn, "{message}").expect("sending");
    let mut reply = String::new();
    BufReader::new(conn).read_line(&mut reply).expect("reading");
    print!("{reply}");
}
