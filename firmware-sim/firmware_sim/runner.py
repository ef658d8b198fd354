"""Run the simulated devices of a site config, optionally driven by a scenario.

* Every RS-485 bus of the chosen gateways becomes a :class:`PtyBus` whose
  client end is linked at the path the config names, with a pymodbus RTU
  server answering for every Modbus device on it.
* Every MQTT-native device connects to the broker with its own account and
  publishes an uplink every ``poll_interval_s``.
* Scenario steps change values, ramp them, inject faults or raw registers.
* When a scenario with a ``duration_s`` has played, ``after`` says what
  follows (:class:`AfterScenario`): the simulator ends (``stop``, the
  default: ``sc sim run`` and the tests that play one scenario), its devices
  keep running in the state the scenario left them in (``hold``, the demo),
  or they go back to how they started and the scenario plays again
  (``repeat``).

Use :class:`Simulator` inside an asyncio program (``await sim.run(stop)``)
or :class:`SimulatorThread` from synchronous code and tests.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Iterable
from datetime import UTC, datetime
from functools import partial

from pymodbus.server import ModbusSerialServer
from pymodbus.simulator import DataType, SimData, SimDevice

from sc.config.loader import LoadedConfig
from sc.config.schema import DeviceConfig, Transport
from sc.contracts.messages import Uplink, encode
from sc.contracts.topics import Kind, Topic
from sc.mqtt import MqttConnection, MqttCredentials

from .door import DoorControllerSim
from .garagebus import GarageWorld
from .models import DEFAULTS, SimSensor
from .ptybus import Fault, PtyBus
from .scenario import AfterScenario, Scenario, ScenarioError, Step

__all__ = ["AfterScenario", "Simulator", "SimulatorThread"]

log = logging.getLogger(__name__)
logging.getLogger("pymodbus").setLevel(logging.CRITICAL)

_INPUT_REGS = 4  # function code: read input registers


async def _serve_registers(
    sensor: SimSensor,
    function_code: int,
    start_address: int,
    address: int,
    count: int,
    current_registers: list[int],
    set_values: object,
) -> None:
    """pymodbus action: fill the register block from the model at every read."""
    if function_code == _INPUT_REGS:
        regs = sensor.registers()
        for i, value in enumerate(regs):
            if start_address + i < len(current_registers):
                current_registers[start_address + i] = value
    return None


class Simulator:
    def __init__(
        self,
        loaded: LoadedConfig,
        *,
        gateways: Iterable[str] | None = None,
        scenario: Scenario | None = None,
        speed: float = 1.0,
        garage_traffic: int | None = None,
        after: AfterScenario = AfterScenario.STOP,
    ) -> None:
        self.loaded = loaded
        site = loaded.site
        chosen = set(gateways) if gateways is not None else {g.id for g in site.gateways}
        self.gateways = [g for g in site.gateways if g.id in chosen]
        self.scenario = scenario or Scenario()
        self.speed = speed
        self.after = after
        #: the scenario is playing round ``rounds`` (more than 1 only with ``repeat``)
        self.rounds = 1
        #: set once the scenario has played (with ``hold``: the devices still run)
        self.finished = threading.Event()
        self.sensors: dict[str, SimSensor] = {}
        self.device_cfg: dict[str, DeviceConfig] = {}
        self.device_gateway: dict[str, str] = {}
        self.buses: dict[tuple[str, str], PtyBus] = {}
        self.mqtt_faults: dict[str, Fault] = {}
        self.doors: dict[str, DoorControllerSim] = {}  # gate id -> its simulated door controller
        self.uplinks_sent = 0
        #: garage id -> its simulated garage (lights, sensors, cars and people); ``garage_traffic`` seeds endless
        #: random traffic (the demo), else tests add agents themselves
        self.garages: dict[str, GarageWorld] = {
            g.id: GarageWorld(g, traffic_seed=garage_traffic)
            for gw in self.gateways
            for g in site.garages_of(gw.id)
            if g.lanes
        }
        for gw in self.gateways:
            for dev in gw.devices:
                self.sensors[dev.id] = SimSensor(dev)
                self.device_cfg[dev.id] = dev
                self.device_gateway[dev.id] = gw.id
        self.ready = threading.Event()
        self._t0 = 0.0
        self._check_scenario()

    def _check_scenario(self) -> None:
        """Refuse a scenario that names devices or fields these gateways do not have."""
        for i, step in enumerate(self.scenario.steps):
            dev = self.device_cfg.get(step.device)
            if dev is None:
                raise ScenarioError(
                    f"steps.{i}: scenario names device {step.device!r}, which the simulated gateways "
                    f"({', '.join(g.id for g in self.gateways)}) do not have"
                )
            fields = set(step.set or {}) | set(step.ramp or {})
            unknown = fields - set(DEFAULTS[dev.type])
            if unknown:
                raise ScenarioError(
                    f"steps.{i}: a {dev.type.value} has no field {', '.join(sorted(unknown))} "
                    f"(it has {', '.join(DEFAULTS[dev.type])})"
                )

    # ---------------------------------------------------------------- control

    def now(self) -> float:
        """Scenario seconds since start (of this round, with ``repeat``)."""
        return (time.monotonic() - self._t0) * self.speed

    def reset(self) -> None:
        """Every device the scenario names back to how it started: values, raw registers, no fault."""
        for device in sorted({step.device for step in self.scenario.steps}):
            self.sensors[device].reset()
            dev = self.device_cfg[device]
            if dev.transport is Transport.MQTT:
                self.mqtt_faults.pop(device, None)
            elif dev.bus is not None and dev.unit is not None:
                bus = self.buses.get((self.device_gateway[device], dev.bus))
                if bus is not None and bus.faults.get(dev.unit, Fault.NONE) is not Fault.NONE:
                    bus.set_fault(dev.unit, Fault.NONE)

    def fault(self, device: str, fault: Fault | str) -> None:
        dev = self.device_cfg[device]
        if dev.transport is Transport.MQTT:
            self.mqtt_faults[device] = Fault(fault)
            log.info("sim device=%s fault=%s", device, Fault(fault).value)
            return
        assert dev.bus is not None and dev.unit is not None
        self.buses[(self.device_gateway[device], dev.bus)].set_fault(dev.unit, fault)

    def apply(self, step: Step) -> None:
        sensor = self.sensors.get(step.device)
        if sensor is None:
            raise KeyError(f"scenario names device {step.device!r}, which the simulated gateways do not have")
        if step.set is not None:
            sensor.set(step.set)
        elif step.ramp is not None:
            sensor.ramp(step.ramp, step.over, self.now())
        elif step.fault is not None:
            self.fault(step.device, step.fault)
        elif step.raw is not None:
            sensor.raw = list(step.raw)
        elif step.clear_raw:
            sensor.raw = None
        log.info(
            "sim t=%.1f device=%s %s",
            self.now(),
            step.device,
            step.model_dump(exclude_defaults=True, exclude={"at", "device"}),
        )

    # ---------------------------------------------------------------- running

    async def run(self, stop: asyncio.Event) -> None:
        self._t0 = time.monotonic()
        servers: list[ModbusSerialServer] = []
        tasks: list[asyncio.Task[None]] = []
        conns: list[MqttConnection] = []
        try:
            for gw in self.gateways:
                for bus_cfg in gw.buses:
                    on_bus = [d for d in gw.devices if d.bus == bus_cfg.id]
                    doors = [
                        g for g in self.loaded.site.gates_of(gw.id) if g.door is not None and g.door.bus == bus_cfg.id
                    ]
                    bus = PtyBus(link=self.loaded.resolve(bus_cfg.port)).start()
                    self.buses[(gw.id, bus_cfg.id)] = bus
                    garage_devices: list[SimDevice] = []
                    for g in self.loaded.site.garages_of(gw.id):
                        world = self.garages.get(g.id)
                        if world is None:
                            continue
                        garage_devices += [
                            world.controllers[c.id].sim_device() for c in g.controllers if c.bus == bus_cfg.id
                        ]
                        garage_devices += [
                            world.modules[m.id].sim_device() for m in g.sensor_modules if m.bus == bus_cfg.id
                        ]
                    if not on_bus and not doors and not garage_devices:
                        continue
                    simdevices = [
                        SimDevice(
                            id=d.unit or 0,  # modbus devices always have a unit (config check)
                            simdata=(
                                [SimData(0, values=False, datatype=DataType.BITS)],
                                [SimData(0, values=False, datatype=DataType.BITS)],
                                [SimData(0, count=8, values=0, datatype=DataType.REGISTERS)],
                                [SimData(0, count=8, values=0, datatype=DataType.REGISTERS)],
                            ),
                            action=partial(_serve_registers, self.sensors[d.id]),
                        )
                        for d in on_bus
                    ]
                    for gate in doors:  # the gate's door controller shares the bus, as on site
                        assert gate.door is not None
                        self.doors[gate.id] = DoorControllerSim.from_config(gate.door)
                        simdevices.append(self.doors[gate.id].sim_device())
                    simdevices += garage_devices
                    server = ModbusSerialServer(
                        simdevices, port=bus.server_port, baudrate=bus_cfg.baudrate, ignore_missing_devices=True
                    )
                    servers.append(server)
                    tasks.append(asyncio.create_task(server.serve_forever(), name=f"modbus-{gw.id}-{bus_cfg.id}"))
                    log.info(
                        "sim bus %s/%s at %s with units %s",
                        gw.id,
                        bus_cfg.id,
                        self.loaded.resolve(bus_cfg.port),
                        [d.unit for d in on_bus]
                        + [g.door.unit for g in doors if g.door is not None]
                        + [dev.id for dev in garage_devices],
                    )
                for dev in gw.devices:
                    if dev.transport is Transport.MQTT:
                        conn = self._mqtt_device(gw.id, dev)
                        conns.append(conn)
                        tasks.append(asyncio.create_task(self._uplinks(gw.id, dev, conn, stop)))
            await asyncio.sleep(0.2)  # let the servers open their ports
            self.ready.set()
            await self._play(stop)
        finally:
            for t in tasks:
                t.cancel()
            for server in servers:
                await server.shutdown()  # type: ignore[no-untyped-call]
            await asyncio.gather(*tasks, return_exceptions=True)
            for conn in conns:
                conn.stop()
            for bus in self.buses.values():
                bus.close()

    async def _play(self, stop: asyncio.Event) -> None:
        steps = sorted(self.scenario.steps, key=lambda s: s.at)
        i = 0
        duration = self.scenario.duration_s
        while not stop.is_set():
            now = self.now()
            while not self.finished.is_set() and i < len(steps) and steps[i].at <= now:
                self.apply(steps[i])
                i += 1
            for s in self.sensors.values():
                s.advance(now)
            for world in self.garages.values():
                world.step()
            if duration is not None and now >= duration and not self.finished.is_set():
                if self.after is AfterScenario.REPEAT:
                    log.info("sim scenario %r round %d finished at t=%.1f; again", self.scenario.name, self.rounds, now)
                    self.reset()
                    self.rounds += 1
                    self._t0, i = time.monotonic(), 0
                    continue
                self.finished.set()
                if self.after is AfterScenario.STOP:
                    log.info("sim scenario %r finished at t=%.1f", self.scenario.name, now)
                    return
                log.info(
                    "sim scenario %r finished at t=%.1f; the devices keep running as it left them",
                    self.scenario.name,
                    now,
                )
            try:
                await asyncio.wait_for(stop.wait(), timeout=0.05)
            except TimeoutError:
                pass

    def _mqtt_device(self, gateway: str, dev: DeviceConfig) -> MqttConnection:
        assert dev.account is not None
        password = self.loaded.resolve(dev.account.password_file).read_text().strip()
        conn = MqttConnection(
            broker=self.loaded.site.broker,
            client_id=dev.id,
            credentials=MqttCredentials(dev.account.username, password),
        )
        conn.start()
        return conn

    async def _uplinks(self, gateway: str, dev: DeviceConfig, conn: MqttConnection, stop: asyncio.Event) -> None:
        topic = str(Topic(self.loaded.site.site.id, gateway, Kind.UPLINK, dev.id))
        period = dev.poll_interval_s / self.speed
        while not stop.is_set():
            fault = self.mqtt_faults.get(dev.id, Fault.NONE)
            if conn.connected and fault is not Fault.SILENT:
                if fault is Fault.GARBAGE:
                    payload = b"\x00\xffnot json{"
                elif fault is Fault.BAD_CRC:
                    payload = b'{"v": 1, "reading": {"type": "manhole", "tilt_deg": "broken"}}'
                else:
                    payload = encode(Uplink(ts=datetime.now(UTC), reading=self.sensors[dev.id].reading()))
                conn.publish(topic, payload, qos=1)
                self.uplinks_sent += 1
            try:
                await asyncio.wait_for(stop.wait(), timeout=period)
            except TimeoutError:
                pass


class SimulatorThread:
    """Run a :class:`Simulator` on its own event loop in a background thread."""

    def __init__(self, sim: Simulator) -> None:
        self.sim = sim
        self._loop = asyncio.new_event_loop()
        self._stop: asyncio.Event | None = None
        self._thread = threading.Thread(target=self._main, name="simulator", daemon=True)
        self.error: BaseException | None = None

    def _main(self) -> None:
        asyncio.set_event_loop(self._loop)

        async def go() -> None:
            self._stop = asyncio.Event()
            await self.sim.run(self._stop)

        try:
            self._loop.run_until_complete(go())
        except BaseException as exc:  # surfaced to the test through .error
            self.error = exc
            self.sim.ready.set()
        finally:
            self._loop.close()

    def start(self, timeout: float = 10.0) -> SimulatorThread:
        self._thread.start()
        if not self.sim.ready.wait(timeout):
            raise TimeoutError("simulator did not start")
        if self.error is not None:
            raise RuntimeError(f"simulator failed: {self.error}") from self.error
        return self

    def stop(self) -> None:
        if self._stop is not None and self._thread.is_alive():
            self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(10)
