"""Flow vocabularies, one flow per line: ``VOCABULARY`` every match field and action the app
puts on the wire; ``PARSER_VOCABULARY`` everything the flow parser accepts (OVS accepts every
line)."""

from __future__ import annotations

VOCABULARY = """
table=0,priority=100,in_port=1,eth_src=02:00:00:00:00:01,actions=write_metadata:0x10/0xff,goto_table:1
table=0,priority=90,in_port=2,dl_vlan=100,actions=pop_vlan,write_metadata:0x20,goto_table:1
table=0,priority=89,in_port=2,vlan_tci=0x1000/0x1000,actions=drop
table=0,priority=88,in_port=3,vlan_tci=0x0000/0x1fff,eth_dst=02:00:00:00:00:00/01:00:00:00:00:00,actions=drop
table=1,priority=50,arp,arp_spa=10.0.0.1,arp_tpa=10.0.0.0/24,arp_op=1,actions=set_field:02:5e:00:00:00:01->eth_src,set_field:2->arp_op,IN_PORT
table=1,priority=49,arp,arp_sha=02:00:00:00:00:01,arp_tha=00:00:00:00:00:00,actions=set_field:02:5e:00:00:00:01->arp_sha,set_field:10.0.0.1->arp_spa,set_field:02:00:00:00:00:01->arp_tha,set_field:10.0.0.9->arp_tpa,output:1
table=1,priority=40,ip,nw_src=10.0.0.0/24,actions=ct(zone=5,table=2)
table=1,priority=39,ip,nw_ttl=1,actions=drop
table=2,priority=40,ct_state=+trk+new,tcp,tp_dst=80,actions=ct(commit,zone=5),goto_table:3
table=2,priority=39,ct_state=+trk+new,udp,udp_src=53,udp_dst=1024/0xfc00,actions=ct(commit,zone=65535),goto_table:3
table=2,priority=38,ct_state=+trk+new,tcp,tcp_src=1000,actions=ct(commit),goto_table:3
table=2,priority=30,ct_state=+trk+est,ip,actions=goto_table:3
table=2,priority=20,ct_state=+inv+trk,actions=drop
table=2,priority=19,ct_zone=5,ct_state=+trk+rel,actions=goto_table:3
table=2,priority=10,ip,ip_dst=10.0.0.2,actions=conjunction(7,1/2)
table=2,priority=10,tcp,tcp_dst=22,actions=conjunction(7,2/2)
table=2,priority=10,conj_id=7,ip,actions=goto_table:3
table=2,priority=9,ip,ip_src=10.0.0.3,actions=conjunction(8,1/3),conjunction(9,2/2)
table=3,priority=10,cookie=0x1234abcd,metadata=0x10/0xff,eth_dst=02:00:00:00:00:02,actions=meter:1,push_vlan:0x8100,set_field:4196->vlan_vid,output:2
table=3,priority=9,ip,eth_dst=02:5e:00:00:00:01,actions=set_field:02:5e:00:00:00:01->eth_src,set_field:02:00:00:00:00:09->eth_dst,dec_ttl,output:3
table=3,priority=8,reg0=0x5,reg7=0x1/0x1,actions=set_field:0x7->reg1,CONTROLLER:65535
table=3,priority=7,icmp,icmp_type=8,icmp_code=0,actions=output:4,LOCAL
table=3,priority=6,ipv6,ipv6_src=fe80::/64,ipv6_dst=fe80::1,actions=drop
table=3,priority=5,icmp6,icmpv6_type=135,icmpv6_code=0,nd_target=fe80::1,actions=drop
table=3,priority=4,icmp6,icmpv6_type=136,nd_target=fe80::2,actions=drop
table=3,priority=3,icmp6,icmpv6_type=135,nd_sll=02:00:00:00:00:01,actions=drop
table=3,priority=2,icmp6,icmpv6_type=135,ipv6_src=fe80::11,nd_target=2001:db8::1,actions=set_field:2001:db8::1->ipv6_src,set_field:fe80::11->ipv6_dst,set_field:136->icmpv6_type,set_field:3758096384->nd_reserved,set_field:2->nd_options_type,goto_table:4
table=4,priority=2,icmp6,icmpv6_type=136,nd_tll=02:00:00:00:01:01,nd_reserved=3758096384,nd_options_type=2,actions=set_field:02:5e:00:00:00:01->nd_tll,IN_PORT
table=3,priority=0,actions=drop
"""

PARSER_VOCABULARY = """\
table=0,priority=100,in_port=1,dl_src=02:00:00:00:01:01,dl_type=0x0800,nw_src=10.0.0.11,actions=write_metadata:0x1/0xff,goto_table:10
table=0,priority=100,in_port=1,arp,arp_sha=02:00:00:00:01:01,arp_spa=10.0.0.11,actions=meter:3,write_metadata:0x100000001/0xffff0000ffff,goto_table:10
table=0,priority=90,in_port=2,dl_vlan=101,actions=pop_vlan,write_metadata:0x2/0xff,goto_table:10
table=0,priority=80,in_port=3,vlan_tci=0x1000/0x1000,actions=strip_vlan,goto_table:10
table=0,priority=70,in_port=4,vlan_tci=0x0000/0x1fff,ip,actions=goto_table:10
table=0,priority=60,in_port=5,vlan_vid=0x1066,actions=drop
table=0,priority=0,actions=drop
table=10,priority=200,arp,arp_op=1,arp_tpa=10.0.0.1,actions=set_field:2->arp_op,set_field:02:5e:00:00:00:01->eth_src,IN_PORT
table=10,priority=190,arp,arp_op=1,arp_tpa=10.0.0.1,metadata=0x1/0xff,actions=set_field:2->arp_op,set_field:02:5e:00:00:00:01->arp_sha,set_field:10.0.0.1->arp_spa,set_field:02:00:00:00:01:01->arp_tha,set_field:10.0.0.11->arp_tpa,output:in_port
table=10,priority=180,arp,arp_tha=02:00:00:00:01:02,actions=output:2
table=10,priority=150,tcp,nw_dst=10.0.0.0/24,tcp_dst=0x1f90/0xfff0,actions=ct(commit,zone=5,table=30)
table=10,priority=150,udp,udp_src=53,udp_dst=1000,actions=ct(zone=5,table=30)
table=10,priority=140,icmp,icmp_type=8,icmp_code=0,nw_ttl=64,actions=ct(table=30,zone=5)
table=10,priority=130,tcp,tp_dst=22,actions=conjunction(7,1/2)
table=10,priority=130,ip,nw_src=10.0.0.11,actions=conjunction(7,2/2)
table=10,priority=130,conj_id=7,ip,actions=dec_ttl,mod_dl_src:02:5e:00:00:00:05,mod_dl_dst:02:00:00:00:01:02,output:3
table=10,priority=120,ipv6,ipv6_src=fe80::1,ipv6_dst=2001:db8::/64,actions=output:4
table=10,priority=120,icmp6,icmp_type=135,nd_target=2001:db8::1,nd_sll=02:00:00:00:01:01,actions=output:5
table=10,priority=119,icmp6,icmp_type=135,ipv6_src=2001:db8::11,nd_target=2001:db8::1,actions=set_field:02:00:00:00:01:11->eth_dst,set_field:02:5e:00:00:00:01->eth_src,set_field:2001:db8::1->ipv6_src,set_field:2001:db8::11->ipv6_dst,set_field:136->icmpv6_type,set_field:0xe0000000->nd_reserved,set_field:2->nd_options_type,IN_PORT
table=10,priority=118,icmp6,icmpv6_type=136,nd_tll=02:00:00:00:01:01,nd_reserved=3758096384,nd_options_type=2,actions=set_field:02:5e:00:00:00:01->nd_tll,set_field:2001:db8::1->nd_target,set_field:0->icmpv6_code,output:5
table=10,priority=117,icmp6,icmp_type=135,nd_sll=02:00:00:00:01:00/ff:ff:ff:ff:ff:00,actions=set_field:02:5e:00:00:00:01->nd_sll,output:5
table=10,priority=116,icmp,icmp_type=8,actions=set_field:0->icmp_type,set_field:0->icmp_code,IN_PORT
table=10,priority=110,reg0=0x5,reg3=0x10/0xf0,ip,actions=set_field:0x7->reg1,output:6
table=10,priority=100,dl_dst=01:00:00:00:00:00/01:00:00:00:00:00,actions=drop
table=10,priority=99,dl_dst=02:00:00:00:01:02,actions=push_vlan:0x8100,set_field:4196->vlan_vid,output:7
table=10,priority=98,dl_dst=02:00:00:00:01:03,actions=push_vlan:0x8100,mod_vlan_vid:101,output:8
table=10,priority=97,dl_dst=02:00:00:00:01:04,vlan_tci=0x1000/0x1000,actions=set_field:4197->vlan_vid,output:8
table=10,priority=96,dl_dst=02:00:00:00:01:05,actions=controller(reason=no_match,max_len=128)
table=10,priority=95,dl_dst=02:00:00:00:01:06,actions=CONTROLLER:65535
table=10,priority=94,dl_dst=02:00:00:00:01:07,actions=mod_vlan_vid:102,output:9
table=10,priority=93,dl_dst=02:00:00:00:01:08,actions=controller
table=30,priority=100,ip,ct_state=+trk+est-rel-inv,ct_zone=5,actions=output:1
table=30,priority=100,ip,ct_state=+new+trk,actions=ct(commit,zone=5),output:2
table=30,priority=90,ip,ct_state=+inv+trk,actions=drop
table=30,priority=80,ip,ct_state=-trk,actions=ct(zone=5,table=30)
table=30,priority=70,ip,ct_state=0x21/0x23,actions=ct(commit),output:in_port
table=40,cookie=0x1234,priority=5,ip,nw_src=10.0.0.0/255.255.255.0,tcp,actions=output:9
table=40,priority=6,udp6,udp_dst=53,actions=drop
table=40,priority=7,dl_type=0x0806,nw_src=10.0.0.1,nw_dst=10.0.0.2/255.255.0.255,actions=output:LOCAL
table=40,priority=8,dl_type=0x86dd,nw_proto=58,icmpv6_type=136,actions=drop
table=40,cookie=0xabcdef0123456789,priority=9,in_port=LOCAL,metadata=0xffffffffffffffff,actions=output:1
table=40,priority=10,reset_counts,idle_timeout=0,ip,nw_proto=17,actions=drop
"""
