//! Prints the nft script of N guests × 10 rules (`cargo run --release --example bigscript N`),
//! for timing nft on it by hand.

use hearth_core::firewall::{FirewallConfig, fwfile};
use hearth_fw::{FirewallInput, GuestFirewall, GuestNic, compile};

fn main() {
    let n: u32 = std::env::args().nth(1).and_then(|a| a.parse().ok()).unwrap_or(1000);
    let cluster = fwfile::parse("[OPTIONS]\nenable: 1\n[IPSET mgmt]\n10.0.0.0/24\n!10.0.0.9\n[group web]\nIN ACCEPT -p tcp -dport 80\nIN HTTPS(ACCEPT)\n").expect("parses");
    let guests = (0..n)
        .map(|i| {
            let vmid = 100 + i;
            let text = format!(
                "[OPTIONS]\nenable: 1\nipfilter: 1\n[RULES]\nGROUP web\nIN SSH(ACCEPT) -source +mgmt\nIN ACCEPT -p tcp -dport {}\nIN ACCEPT -p udp -dport 53 -source 10.1.0.0/16\nIN REJECT -p tcp -dport 23\nIN ACCEPT -source 10.2.{}.0/24 -p tcp -dport 5000:5100\nIN Ping(ACCEPT)\nOUT DROP -p tcp -dport 25\nOUT ACCEPT -dest 10.3.0.0/16\nIN DROP -p udp -dport 137:139 -log info\n",
                1000 + i % 500,
                i % 250
            );
            GuestFirewall {
                vmid,
                config: fwfile::parse(&text).expect("parses"),
                nics: vec![GuestNic { index: 0, port: format!("tap{vmid}i0"), mac: Some(format!("bc:24:11:00:{:02x}:{:02x}", i / 256, i % 256)), ips: vec![], firewall: true }],
            }
        })
        .collect();
    let input = FirewallInput { cluster, host: FirewallConfig::default(), guests };
    print!("{}", compile(&input).expect("compiles").to_nft());
}
