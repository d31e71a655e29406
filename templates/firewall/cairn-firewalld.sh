#!/bin/sh
# Cairn member {{ node.name }} (cluster {{ cluster.name }}), firewalld: adds rich rules to the firewalld zone
# $ZONE (default public: the zone of the host's network interface) that accept the peer port
# {{ node.peer_port }} from the other members and the client port {{ node.client_port }} from client_sources and
# the members; the zone's own target refuses everyone else on these ports. Rules an earlier run added (any
# rich rule on these two ports) are removed first, so running it again converges. Permanent, then reloaded.
set -eu
ZONE="${ZONE:-public}"
fw() { firewall-cmd --permanent --zone="$ZONE" "$@"; }
firewall-cmd --permanent --zone="$ZONE" --list-rich-rules | while read -r rule; do
    case "$rule" in
        *'port="{{ node.peer_port }}"'*|*'port="{{ node.client_port }}"'*) fw --remove-rich-rule="$rule" ;;
    esac
done
{% for src in fw.peers_v4 %}fw --add-rich-rule='rule family="ipv4" source address="{{ src }}" port port="{{ node.peer_port }}" protocol="tcp" accept'
{% endfor %}{% for src in fw.peers_v6 %}fw --add-rich-rule='rule family="ipv6" source address="{{ src }}" port port="{{ node.peer_port }}" protocol="tcp" accept'
{% endfor %}{% for src in fw.clients_v4 %}fw --add-rich-rule='rule family="ipv4" source address="{{ src }}" port port="{{ node.client_port }}" protocol="tcp" accept'
{% endfor %}{% for src in fw.clients_v6 %}fw --add-rich-rule='rule family="ipv6" source address="{{ src }}" port port="{{ node.client_port }}" protocol="tcp" accept'
{% endfor %}firewall-cmd --reload
