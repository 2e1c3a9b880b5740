"""Per-site galleries by default: a new registry gives each device its own site's citizens; an
upgraded registry keeps what its kiosks greeted with; where every device holds every citizen
and devices stand at several sites, the admin pages and init-db say so."""
import pytest

from db import transaction
from db.migrations import migrate
from db.queries import get_setting, set_setting
from helpers import add_device, enrol
from server import settings
from server.gallery import device_scope, gallery_delta, in_scope

UPGRADE = "m095_site_galleries_by_default"


def test_a_new_registry_gives_each_device_its_own_sites_citizens(app, db):
    assert settings.value(db, "gallery.by_site") is True
    assert get_setting(db, "gallery.by_site") is None        # the default, nothing recorded
    assert not in_scope("hall-b", device_scope(db, "hall-a")) and in_scope("", device_scope(db, "hall-a"))


def from_before_the_upgrade(db, saved=None, citizens=1):
    """The database as the previous version left it: the upgrade not run, the setting saved
    (or not), some citizens."""
    with transaction(db):
        db.execute("DELETE FROM _migrations WHERE name = ?", [UPGRADE])
        db.execute("DELETE FROM settings WHERE key = 'gallery.by_site'")
        if saved is not None:
            set_setting(db, "gallery.by_site", saved)
    for person in ("barack_obama", "joe_biden", "rose_leslie")[:citizens]:
        citizen_id = enrol(db, person)
        with transaction(db):
            db.execute("UPDATE citizens SET district = 'hall-b' WHERE id = ?", [citizen_id])


@pytest.mark.parametrize("saved, citizens, after", [
    (None, 3, False),       # ran on the old default: keeps every citizen on every device
    (True, 3, True),        # an admin's choice stays
    (False, 3, False),
    (None, 0, True),        # nobody was greeted yet: the new default
])
def test_an_upgrade_keeps_what_the_registry_ran_with(app, db, saved, citizens, after):
    from_before_the_upgrade(db, saved, citizens)
    migrate(db)
    assert settings.value(db, "gallery.by_site") is after
    # off: a hall-a kiosk still greets the hall-b citizens it greeted before the upgrade
    held = gallery_delta(db, 0, site="hall-a")["upserts"]
    assert len(held) == (0 if after else citizens)


WARNING = 'id="site-galleries-warning"'


@pytest.mark.parametrize("by_site, sites, warned", [
    (False, ("hall-a", "hall-b"), True),
    (False, ("hall-a", "hall-a", ""), False),   # one site: nothing crosses halls
    (True, ("hall-a", "hall-b"), False),
])
def test_the_admin_pages_and_init_db_say_when_every_device_holds_every_citizen(
        app, db, client, auth, runner, by_site, sites, warned):
    set_setting(db, "gallery.by_site", by_site)
    for n, site in enumerate(sites):
        add_device(db, f"kiosk-{n}", site=site)
    auth.login("admin")
    client.post("/lang/en", data={"csrf_token": auth.csrf_token()})
    for page in ("/admin/", "/admin/devices", "/admin/settings"):
        text = client.get(page).get_data(as_text=True)
        assert (WARNING in text) is warned, page
    if warned:
        assert "devices stand at 2 sites (hall-a, hall-b)" in text
    output = runner.invoke(args=["init-db"]).output
    assert ("per-site galleries are off and devices stand at 2 sites (hall-a, hall-b)" in output) \
        is warned, output


def test_a_revoked_devices_site_does_not_count(app, db, client, auth):
    from server.devices import revoke_device
    set_setting(db, "gallery.by_site", False)
    add_device(db, "kiosk-a", site="hall-a")
    add_device(db, "kiosk-b", site="hall-b")
    revoke_device(db, "kiosk-b")
    auth.login("admin")
    assert WARNING not in client.get("/admin/").get_data(as_text=True)


def test_the_warning_is_in_chinese_too(app, db, client, auth):
    set_setting(db, "gallery.by_site", False)
    add_device(db, "kiosk-a", site="hall-a")
    add_device(db, "kiosk-b", site="hall-b")
    auth.login("admin")
    client.post("/lang/zh", data={"csrf_token": auth.csrf_token()})
    assert "设备分布在 2 个站点（hall-a, hall-b）" in client.get("/admin/").get_data(as_text=True)

