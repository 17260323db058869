"""A small park site file shared by the flow-graph and attribution tests."""

# Grid → substation → (works A: product "a" | works B: no product | storage ↔ substation);
# diesel → yard. Two organisations: "a-co" owns works A and the yard, "b-co" works B.
SMALL_PARK = """
site: {id: g, name: G, kind: park, province: shanxi, grid_region: north}
organisations: [{id: a-co, name: A}, {id: b-co, name: B}, {id: park, name: P}]
nodes:
  - {id: grid, name: Grid, kind: supply}
  - {id: fuel, name: Fuel, kind: supply}
  - {id: export, name: Export, kind: sink}
  - {id: sub, name: Sub, kind: distribution, org: park}
  - {id: works-a, name: A, kind: process, org: a-co}
  - {id: works-b, name: B, kind: process, org: b-co}
  - {id: battery, name: Battery, kind: storage, org: park}
  - {id: yard, name: Yard, kind: transport, org: a-co}
products: [{id: a, name: A, unit: t, node: works-a, org: a-co}]
edges:
  - {source: grid, target: sub, carrier: electricity, meters: [grid]}
  - {source: sub, target: export, carrier: electricity, meters: [grid]}
  - {source: sub, target: works-a, carrier: electricity, meters: [feeder-a]}
  - {source: sub, target: works-b, carrier: electricity, meters: [feeder-b]}
  - {source: sub, target: battery, carrier: electricity, meters: [bess]}
  - {source: battery, target: sub, carrier: electricity, meters: [bess]}
  - {source: fuel, target: yard, carrier: diesel, meters: [diesel]}
devices:
  - {id: grid, name: G, kind: electricity_meter, carrier: electricity, role: grid_import,
     node: sub, org: park, metrics: {energy_export_kwh: counter}}
  - {id: feeder-a, name: A, kind: electricity_meter, carrier: electricity, role: consumption,
     node: works-a, org: a-co}
  - {id: feeder-b, name: B, kind: electricity_meter, carrier: electricity, role: consumption,
     node: works-b, org: b-co}
  - {id: bess, name: S, kind: battery_storage, carrier: electricity, role: storage, node: battery,
     org: park}
  - {id: diesel, name: D, kind: fuel_dispenser, carrier: diesel, role: fuel_supply, node: yard,
     org: a-co}
  - {id: scale, name: Scale, kind: production_meter, carrier: product, role: production,
     product: a, node: works-a, org: a-co}
"""
