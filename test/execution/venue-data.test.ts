import { expect } from 'chai';
import { positiveOrderAmount, venueNumber } from '../../src/execution/venue-data';
import { rejectionOf } from '../support/rejection';

describe('venue data', () => {
  it('reads an order amount above zero exactly, and refuses zero, negatives and junk as invalid_order', async () => {
    expect(positiveOrderAmount('quantity', '1215000011.05650013').toFixed()).to.equal('1215000011.05650013');
    for (const bad of ['0', '-1', 'abc', undefined, Number.NaN]) {
      expect((await rejectionOf(Promise.resolve().then(() => positiveOrderAmount('quantity', bad)))).code, String(bad)).to.equal('invalid_order');
    }
  });

  it('reads a number a venue sent exactly (text with spaces too), and names the venue and field when it cannot', async () => {
    expect(venueNumber('KIS', 'tot_ccld_qty', ' 10 ').toFixed()).to.equal('10');
    const err = await rejectionOf(Promise.resolve().then(() => venueNumber('KIS', 'tot_ccld_qty', 'N/A')));
    expect([err.code, err.message, err.details['venue']]).to.deep.equal(['corrupt_venue_data', 'KIS sent tot_ccld_qty "N/A", not a number', 'kis']);
  });
});
